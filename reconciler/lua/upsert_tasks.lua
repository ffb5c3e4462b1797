-- Execute the task records of a plan, in plan order; the whole batch is one atomic script.
-- ARGV[4]: apply generation; ARGV[5]: JSON array of records, by `mode`:
--   upsert  {id, spec, hash, source, kind, target, deps[], order, priority, retries, timeout,
--            directive}: create, or rewrite the spec; a new / blocked / ready task is settled
--   rerun   (same fields): back to blocked or ready with a fresh retry budget
--   complete {id}: marked done in the file (releases dependents); cancel {id}: cancelled
-- Returns the number of records executed.
local gen = ARGV[4]
local recs = cjson.decode(ARGV[5])
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again

-- `extra`: more fields for the same HSET (a new task's creation fields and first state).
local function write_spec(r, state, old_deps, extra)
  local k = tkey(r.id)
  if old_deps and old_deps ~= '' then
    for _, d in ipairs(cjson.decode(old_deps)) do redis.call('SREM', P .. 'children:' .. d, r.id) end
  end
  local deps_json = '[]'
  if #r.deps > 0 then deps_json = cjson.encode(r.deps) end
  local fields = {'id', r.id, 'spec', r.spec, 'hash', r.hash, 'source', r.source,
    'kind', r.kind, 'target', r.target, 'deps', deps_json, 'order', r.order,
    'priority', r.priority, 'retries', r.retries, 'timeout', r.timeout, 'generation', gen}
  if not state then
    for _, v in ipairs({'created_at', NOW, 'attempt', 0, 'run_base', 0}) do table.insert(fields, v) end
  end
  for _, v in ipairs(extra or {}) do table.insert(fields, v) end
  redis.call('HSET', k, unpack(fields))
  redis.call('ZADD', P .. 'tasks', r.order, r.id)
  for _, d in ipairs(r.deps) do redis.call('SADD', P .. 'children:' .. d, r.id) end
  if not state then event('task.created', 'task', r.id, 'source', r.source) end
end

-- A new pending task: its first state is written with its spec (one HSET), then it is queued,
-- or completed when it is a group with nothing left to wait for.
local function create(r)
  local left = 0
  for _, d in ipairs(r.deps) do
    if redis.call('HGET', tkey(d), 'state') ~= 'completed' then left = left + 1 end
  end
  if left > 0 then
    write_spec(r, nil, nil, {'state', 'blocked', 'deps_left', left})
  elseif r.kind == 'group' then
    write_spec(r, nil, nil, {'state', 'blocked', 'deps_left', 0})
    complete(r.id, nil, 'group')
  else
    write_spec(r, nil, nil, {'state', 'ready', 'deps_left', 0, 'ready_at', NOW})
    local q = P .. 'queue:' .. r.target
    if tonumber(r.priority or 0) > 0 then redis.call('LPUSH', q, r.id) else redis.call('RPUSH', q, r.id) end
    event('task.ready', 'task', r.id, 'target', r.target)
  end
end

-- A ready task whose queue, priority and readiness did not change keeps its place in its queue
-- (an edited description must not send it to the back of the line).
local function keeps_place(r, state, old_target, old_priority)
  if state ~= 'ready' or old_target ~= r.target or old_priority ~= tostring(r.priority) then
    return false
  end
  for _, d in ipairs(r.deps) do
    if redis.call('HGET', tkey(d), 'state') ~= 'completed' then return false end
  end
  return redis.call('LPOS', P .. 'queue:' .. r.target, r.id) ~= false
end

local function cancel(id, state, target, reason)
  if state and not TERMINAL[state] then
    unqueue(id, state, target)
    redis.call('HSET', tkey(id), 'state', 'cancelled', 'finished_at', NOW, 'token', '')
    redis.call('ZREM', P .. 'timers', id)
    event('task.cancelled', 'task', id, 'reason', reason)
  end
end

for _, r in ipairs(recs) do
  local k = tkey(r.id)
  local old = redis.call('HMGET', k, 'state', 'target', 'deps', 'priority')
  local state, old_target, old_deps = old[1], old[2], old[3]
  if r.mode == 'complete' then
    if state and state ~= 'completed' then
      unqueue(r.id, state, old_target)
      redis.call('ZREM', P .. 'timers', r.id)
      complete(r.id, nil, 'marked done in file')
    end
  elseif r.mode == 'cancel' then
    cancel(r.id, state, old_target, 'cancelled in file')
  elseif r.mode == 'rerun' then
    write_spec(r, state, old_deps)
    unqueue(r.id, state, old_target)
    redis.call('HSET', k, 'run_base', redis.call('HGET', k, 'attempt') or 0, 'token', '',
      'error', '', 'next_attempt_at', '')
    redis.call('HDEL', k, 'finished_at')
    redis.call('ZREM', P .. 'timers', r.id)
    event('task.rerun', 'task', r.id)
    settle(r.id)
  else
    if not state and r.directive ~= 'done' and r.directive ~= 'cancelled' then
      create(r)
    else
      write_spec(r, state, old_deps)
    end
    if not state and r.directive == 'done' then
      complete(r.id, nil, 'marked done in file')
    elseif not state and r.directive == 'cancelled' then
      redis.call('HSET', k, 'state', 'cancelled', 'finished_at', NOW)
      event('task.cancelled', 'task', r.id, 'reason', 'cancelled in file')
    elseif state and (state == 'blocked' or state == 'ready') and r.directive == 'pending' then
      if not keeps_place(r, state, old_target, old[4]) then
        unqueue(r.id, state, old_target)
        settle(r.id)
      end
    end
  end
end
return #recs
