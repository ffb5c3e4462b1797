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

-- What a task's dependencies leave it waiting for: how many are not completed (a recount, not a
-- counter, so re-runs and repeated completions never release a dependent twice), and the task
-- upstream that failed or was cancelled, if one did: the first such dependency, or the one its
-- own `upstream` names. Such a task can never run as things stand: it is `upstream_failed`.
local BAD = {failed = true, cancelled = true, upstream_failed = true}
local function upstream(deps_json)
  local left, root = 0, nil
  if deps_json and deps_json ~= '' then
    for _, d in ipairs(cjson.decode(deps_json)) do
      local f = redis.call('HMGET', tkey(d), 'state', 'upstream')
      if f[1] ~= 'completed' then left = left + 1 end
      if not root and BAD[f[1]] then root = (f[1] == 'upstream_failed' and f[2]) or d end
    end
  end
  return left, root
end

-- Tasks that became upstream_failed in this script, by the task upstream; `announce` writes one
-- `task.upstream_failed` event per 500 of them (a failure under 10,000 dependents must not
-- flush the capped stream's history). Every script that may settle or release calls it last.
local upstream_news = {}
local function noted(root, id)
  local ids = upstream_news[root]
  if not ids then
    ids = {}
    upstream_news[root] = ids
  end
  ids[#ids + 1] = id
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

local function announce()
  for root, ids in pairs(upstream_news) do
    for i = 1, #ids, 500 do
      local part = {unpack(ids, i, math.min(i + 499, #ids))}
      event('task.upstream_failed', 'upstream', root, 'count', #part, 'tasks', table.concat(part, ' '))
    end
  end
  upstream_news = {}
end

-- `id` changed state: settle again every dependent that waits (blocked or upstream_failed), and
-- theirs in turn wherever one changed. A dependent is upstream_failed while a task upstream
-- failed or was cancelled, blocked while a dependency is not completed, and else ready (a
-- group: completed). Mirrored by plan/diff.py (`_release`).
local function release(id)
  local stack = {id}
  while #stack > 0 do
    local cur = table.remove(stack)
    for _, kid in ipairs(redis.call('SMEMBERS', P .. 'children:' .. cur)) do
      local k = tkey(kid)
      local f = redis.call('HMGET', k, 'state', 'deps', 'kind', 'target', 'priority', 'upstream')
      local was = f[1]
      if was == 'blocked' or was == 'upstream_failed' then
        local left, root = upstream(f[2])
        if root then
          if was ~= 'upstream_failed' or f[6] ~= root then
            redis.call('HSET', k, 'state', 'upstream_failed', 'deps_left', left, 'upstream', root)
            if was ~= 'upstream_failed' then noted(root, kid) end
            table.insert(stack, kid)
          end
        else
          if was == 'upstream_failed' then
            redis.call('HDEL', k, 'upstream')
            table.insert(stack, kid)
          end
          if left > 0 then
            redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
          elseif f[3] == 'group' then
            redis.call('HSET', k, 'state', 'completed', 'deps_left', 0, 'finished_at', NOW)
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

-- Mark `id` completed and release its dependents, cascading through groups, in this script.
local function complete(id, result, reason)
  redis.call('HSET', tkey(id), 'state', 'completed', 'finished_at', NOW, 'token', '')
  redis.call('HDEL', tkey(id), 'upstream')
  if result then redis.call('HSET', tkey(id), 'result', result) end
  event('task.completed', 'task', id, 'reason', reason or '')
  release(id)
end

-- Decide upstream_failed / blocked / ready / completed (groups) for a task whose deps may have
-- changed; entering or leaving upstream_failed releases its dependents too.
local function settle(id)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'deps', 'kind', 'target', 'priority', 'state', 'upstream')
  local left, root = upstream(f[1])
  if root then
    redis.call('HSET', k, 'state', 'upstream_failed', 'deps_left', left, 'upstream', root)
    if f[5] ~= 'upstream_failed' then noted(root, id) end
    if f[5] ~= 'upstream_failed' or f[6] ~= root then release(id) end
    return
  end
  if f[5] == 'upstream_failed' then redis.call('HDEL', k, 'upstream') end
  if left > 0 then
    redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
  elseif f[2] == 'group' then
    complete(id, nil, 'group')
    return
  else
    push_ready(id, f[3], f[4])
  end
  if f[5] == 'upstream_failed' then release(id) end
end
