-- Prune: delete tasks that left the files (a running one is cancelled first: its token is cleared,
-- so its late result is rejected). ARGV[4]: JSON array of ids. Returns the number deleted.
local ids = cjson.decode(ARGV[4])
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again
local n = 0
for _, id in ipairs(ids) do
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'state', 'target', 'deps')
  if f[1] then
    if f[1] == 'running' then event('task.cancelled', 'task', id, 'reason', 'pruned') end
    unqueue(id, f[1], f[2])
    if f[3] and f[3] ~= '' then
      for _, d in ipairs(cjson.decode(f[3])) do redis.call('SREM', P .. 'children:' .. d, id) end
    end
    redis.call('DEL', k, P .. 'attempts:' .. id)
    redis.call('ZREM', P .. 'tasks', id)
    redis.call('ZREM', P .. 'timers', id)
    event('task.deleted', 'task', id)
    n = n + 1
  end
end
return n
