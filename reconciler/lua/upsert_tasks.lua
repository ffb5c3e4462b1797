-- Create or update a batch of tasks from a plan; each task's write is atomic (the whole script is).
-- ARGV[3]: apply generation; ARGV[4]: JSON array of records
--   {id, spec, hash, source, kind, target, deps[], order, priority, retries, timeout, directive,
--    rerun}
-- Returns the number of tasks written.
local gen = ARGV[3]
local recs = cjson.decode(ARGV[4])
for _, r in ipairs(recs) do
  local k = tkey(r.id)
  local old = redis.call('HMGET', k, 'state', 'target', 'deps')
  local state, old_target, old_deps = old[1], old[2], old[3]
  local deps_json = cjson.encode(r.deps)
  if #r.deps == 0 then deps_json = '[]' end
  if old_deps and old_deps ~= '' then
    for _, d in ipairs(cjson.decode(old_deps)) do redis.call('SREM', P .. 'children:' .. d, r.id) end
  end
  redis.call('HSET', k, 'id', r.id, 'spec', r.spec, 'hash', r.hash, 'source', r.source,
    'kind', r.kind, 'target', r.target, 'deps', deps_json, 'order', r.order,
    'priority', r.priority, 'retries', r.retries, 'timeout', r.timeout, 'generation', gen)
  redis.call('ZADD', P .. 'tasks', r.order, r.id)
  for _, d in ipairs(r.deps) do redis.call('SADD', P .. 'children:' .. d, r.id) end
  if not state then
    redis.call('HSET', k, 'created_at', NOW, 'attempt', 0, 'run_base', 0)
    event('task.created', 'task', r.id, 'source', r.source)
  end
  if r.directive == 'done' then
    if state ~= 'completed' then
      unqueue(r.id, state, old_target)
      complete(r.id, nil, 'marked done in file')
    end
  elseif r.directive == 'cancelled' then
    if not state or not TERMINAL[state] then
      unqueue(r.id, state, old_target)
      redis.call('HSET', k, 'state', 'cancelled', 'finished_at', NOW, 'token', '')
      event('task.cancelled', 'task', r.id, 'reason', 'cancelled in file')
    end
  elseif r.rerun then
    unqueue(r.id, state, old_target)
    redis.call('HSET', k, 'run_base', redis.call('HGET', k, 'attempt') or 0, 'token', '',
      'error', '', 'next_attempt_at', '')
    redis.call('HDEL', k, 'finished_at')
    redis.call('ZREM', P .. 'timers', r.id)
    event('task.rerun', 'task', r.id)
    settle(r.id)
  elseif not state or state == 'blocked' or state == 'ready' then
    unqueue(r.id, state, old_target)
    settle(r.id)
  end
end
return #recs
