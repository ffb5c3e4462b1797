-- Prune: tasks that left the files become tombstones. ARGV[4]: JSON array of ids. Each task's
-- record (state, attempts, result) is renamed to `deleted:ID` (its history to
-- `deleted-attempts:ID`) and indexed in `deleted` by the time it was pruned, so no queue, count
-- or script sees it, and the same id coming back to the files is restored, not re-run
-- (upsert_tasks.lua `restore`); `purge_tombstones.lua` drops it after `keep_deleted`. A running
-- task's attempt is stopped (its token cleared: its late result is rejected) and kept in its
-- history as handed back, not counted against its retries: restored, it runs again. What waits
-- for a pruned task (a task of the CLI) becomes upstream_failed, naming it. Returns the count.
local ids = cjson.decode(ARGV[4])
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again
local gone = {}
for _, id in ipairs(ids) do
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'state', 'target', 'deps', 'attempt', 'assignee', 'started_at',
    'run_base')
  if f[1] then
    if f[1] == 'running' then
      event('task.cancelled', 'task', id, 'reason', 'pruned')
      record_attempt(id, {attempt = tonumber(f[4]), agent = f[5], outcome = 'handed back',
        reason = 'pruned'}, f[6])
      redis.call('HSET', k, 'state', 'ready', 'token', '', 'run_base', tonumber(f[7] or 0) + 1)
    end
    unqueue(id, f[1], f[2])
    if f[3] and f[3] ~= '' then
      for _, d in ipairs(cjson.decode(f[3])) do redis.call('SREM', P .. 'children:' .. d, id) end
    end
    local tomb, history = P .. 'deleted:' .. id, P .. 'deleted-attempts:' .. id
    redis.call('DEL', history)
    move(k, tomb)
    move(P .. 'attempts:' .. id, history)
    redis.call('HSET', tomb, 'deleted_at', NOW)
    redis.call('ZADD', P .. 'deleted', NOW, id)
    redis.call('ZREM', P .. 'tasks', id)
    redis.call('ZREM', P .. 'timers', id)
    event('task.deleted', 'task', id, 'state', f[1])
    gone[#gone + 1] = id
  end
end
for _, id in ipairs(gone) do release(id) end
announce()
return #gone
