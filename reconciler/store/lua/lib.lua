-- Shared by every task transition script (prepended by store/scripts.py).
-- ARGV[1] is the town's key prefix "tt:{TOWN}:", ARGV[2] the caller's clock (unix seconds),
-- ARGV[3] the caller's fence: '' = unfenced (an agent's transitions are fenced by attempt tokens,
-- `tt apply` holds the apply lock), 'e:N' = written as the leader of epoch N; refused before
-- anything is written unless N is still the town's leader epoch (a deposed leader's pass).
-- Every key lives under one hash tag, so the keys built here stay on the script's slot.
local P = ARGV[1]
local NOW = ARGV[2]
local FENCE = ARGV[3] or ''
if FENCE ~= '' and FENCE ~= 'e:' .. (redis.call('GET', P .. 'leader:epoch') or '0') then
  return redis.error_reply('TTFENCED ' .. FENCE .. ' is no longer the leader epoch')
end
local TERMINAL = {completed = true, failed = true, cancelled = true}

local function tkey(id) return P .. 'task:' .. id end

local function event(etype, ...)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 10000, '*', 'type', etype, 'ts', NOW, ...)
end

-- Dependencies not yet completed. A recount (not a counter) keeps re-runs and repeated
-- completions from releasing a dependent twice.
local function deps_left(deps_json)
  local left = 0
  if deps_json and deps_json ~= '' then
    for _, d in ipairs(cjson.decode(deps_json)) do
      if redis.call('HGET', tkey(d), 'state') ~= 'completed' then left = left + 1 end
    end
  end
  return left
end

local function push_ready(id, target, priority)
  redis.call('HSET', tkey(id), 'state', 'ready', 'deps_left', 0, 'ready_at', NOW)
  local q = P .. 'queue:' .. target
  if tonumber(priority or 0) > 0 then redis.call('LPUSH', q, id) else redis.call('RPUSH', q, id) end
  event('task.ready', 'task', id, 'target', target)
end

-- The end of an attempt: its agent no longer works on `id` (unless it has moved on to another).
local function release_agent(agent, id)
  if agent and agent ~= '' and redis.call('HGET', P .. 'agent:' .. agent, 'task') == id then
    redis.call('HSET', P .. 'agent:' .. agent, 'task', '')
  end
end

local function unqueue(id, state, target)
  if state == 'ready' and target and target ~= '' then
    redis.call('LREM', P .. 'queue:' .. target, 0, id)
  end
end

-- Mark `id` completed and release its dependents, cascading through groups, in this script.
local function complete(id, result, reason)
  local stack = {}
  redis.call('HSET', tkey(id), 'state', 'completed', 'finished_at', NOW, 'token', '')
  if result then redis.call('HSET', tkey(id), 'result', result) end
  event('task.completed', 'task', id, 'reason', reason or '')
  table.insert(stack, id)
  while #stack > 0 do
    local cur = table.remove(stack)
    for _, kid in ipairs(redis.call('SMEMBERS', P .. 'children:' .. cur)) do
      local k = tkey(kid)
      local f = redis.call('HMGET', k, 'state', 'deps', 'kind', 'target', 'priority')
      if f[1] == 'blocked' then
        local left = deps_left(f[2])
        redis.call('HSET', k, 'deps_left', left)
        if left == 0 then
          if f[3] == 'group' then
            redis.call('HSET', k, 'state', 'completed', 'finished_at', NOW)
            event('task.completed', 'task', kid, 'reason', 'group')
            table.insert(stack, kid)
          else
            push_ready(kid, f[4], f[5])
          end
        end
      end
    end
  end
end

-- Decide blocked / ready / completed (groups) for a task whose deps may have changed.
local function settle(id)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'deps', 'kind', 'target', 'priority')
  local left = deps_left(f[1])
  if left > 0 then
    redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
  elseif f[2] == 'group' then
    complete(id, nil, 'group')
  else
    push_ready(id, f[3], f[4])
  end
end
