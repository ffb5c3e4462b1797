-- The shared readiness rules (prepended after lib.lua by store/scripts.py): what a waiting task
-- is by its dependencies and its `run_if`, and the cascade that settles what waits for a task
-- whose state changed. Mirrored by plan/conditions.py (`readiness`) and plan/model.py.

local function state_in_redis(d) return redis.call('HGET', tkey(d), 'state') end

-- What the dependencies `deps` (a list of ids) make a waiting task with `run_if` (nil: success):
-- 'ready', 'blocked', 'upstream_failed' or 'skipped'; how many are not completed (a recount, not
-- a counter, so re-runs and repeated completions never release a dependent twice); and for
-- upstream_failed the task upstream that failed or was cancelled: the first such dependency, or
-- the one its own `upstream` names. A dependency that does not exist (pruned: a tombstone, or
-- gone) counts as failed, naming it: a task of the CLI waiting for it would otherwise wait
-- forever. success: ready once all completed, upstream_failed as soon as one failed, skipped
-- when all ended and one was skipped; failure: once all ended, ready if one failed, else
-- skipped; always: ready once all ended. A group (`group`: its members and what it waits for)
-- counts a skipped one as done: skipped only when every one was; so does a task for `after`,
-- the member before it in a sequential group that it waits for only to run after it. `state_of`
-- (default: read from Redis) may answer from what a script wrote already.
local function readiness(deps, run_if, state_of, group, after)
  state_of = state_of or state_in_redis
  local left, root, opened, skipped, done = 0, nil, false, false, false
  for _, d in ipairs(deps) do
    local s = state_of(d)
    if s == 'skipped' and d == after then s = 'completed' end
    if s ~= 'completed' then left = left + 1 end
    if not s or BAD[s] then
      if not root then
        root = (s == 'upstream_failed' and redis.call('HGET', tkey(d), 'upstream')) or d
      end
    elseif not ENDED[s] then
      opened = true
    elseif s == 'skipped' then
      skipped = true
    else
      done = true
    end
  end
  if group and done then skipped = false end
  if run_if == 'failure' then
    if opened then return 'blocked', left end
    return (root and 'ready' or 'skipped'), left
  elseif run_if == 'always' then
    return (opened and 'blocked' or 'ready'), left
  end
  if root then return 'upstream_failed', left, root end
  if opened then return 'blocked', left end
  return (skipped and 'skipped' or 'ready'), left
end

local function deps_of(deps_json)
  if not deps_json or deps_json == '' then return {} end
  return cjson.decode(deps_json)
end

-- `id` awaits a person's `tt approve` / `tt reject` (approve.lua, reject.lua): a gate whose
-- dependencies completed, or a task whose attempt succeeded. No queue, no token, no lease: the
-- healing loop has nothing to reclaim; its dependents keep waiting (it is not completed).
local function await_approval(id, result, reason)
  redis.call('HSET', tkey(id), 'state', 'awaiting_approval', 'token', '', 'awaiting_since', NOW)
  if result then redis.call('HSET', tkey(id), 'result', result) end
  event('task.awaiting_approval', 'task', id, 'reason', reason)
end

-- What `decide` reads of a task.
local FIELDS = {'state', 'deps', 'kind', 'target', 'priority', 'upstream', 'run_if', 'after'}
local WAITS = {blocked = true, upstream_failed = true, skipped = true}

-- Whether `release` settles a task in state `state` of kind `kind` again: a waiting one, and a
-- gate awaiting approval (what it waits for may have left completed: a re-run upstream).
local function waits(state, kind)
  return WAITS[state] or (state == 'awaiting_approval' and kind == 'gate')
end

-- Settle `id` (its FIELDS in `f`) by its dependencies: upstream_failed, skipped, blocked, ready
-- (queued), completed (a group) or awaiting approval (a gate; one awaiting already stays so
-- while what it waits for is completed). True when what waits for it must be settled again: it
-- entered or left upstream_failed (or its root changed) or skipped, or a group completed.
local function decide(id, f)
  local k, was = tkey(id), f[1]
  local now, left, root = readiness(deps_of(f[2]), f[7], nil, f[3] == 'group', f[8])
  if was == 'awaiting_approval' then
    if now == 'ready' and f[3] == 'gate' then return false end
    redis.call('HDEL', k, 'awaiting_since')
  end
  if now == 'upstream_failed' then
    if was == 'upstream_failed' and f[6] == root then return false end
    redis.call('HSET', k, 'state', 'upstream_failed', 'deps_left', left, 'upstream', root)
    if was ~= 'upstream_failed' then noted(root, id) end
    return true
  end
  local cascades = was == 'upstream_failed' or was == 'skipped'
  if was == 'upstream_failed' then redis.call('HDEL', k, 'upstream') end
  if now == 'skipped' then
    if was == 'skipped' then return false end
    redis.call('HSET', k, 'state', 'skipped', 'deps_left', left, 'finished_at', NOW)
    noted_skip(id)
    return true
  elseif now == 'blocked' then
    redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
  elseif f[3] == 'group' then
    redis.call('HSET', k, 'state', 'completed', 'deps_left', 0, 'finished_at', NOW)
    event('task.completed', 'task', id, 'reason', 'group')
    return true
  elseif f[3] == 'gate' then
    redis.call('HSET', k, 'deps_left', 0)
    await_approval(id, nil, 'gate')
  else
    push_ready(id, f[4], f[5])
  end
  return cascades
end

-- `id` changed state: settle again every dependent that waits (blocked, upstream_failed or
-- skipped, or a gate awaiting approval), and theirs in turn wherever one changed. Mirrored by plan/model.py (`_release`).
local function release(id)
  wake(id)
  local stack = {id}
  while #stack > 0 do
    local cur = table.remove(stack)
    for _, kid in ipairs(redis.call('SMEMBERS', P .. 'children:' .. cur)) do
      local f = redis.call('HMGET', tkey(kid), unpack(FIELDS))
      if waits(f[1], f[3]) and decide(kid, f) then table.insert(stack, kid) end
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

-- Decide what a task whose deps may have changed is (`decide`); entering or leaving
-- upstream_failed or skipped releases its dependents too.
local function settle(id)
  if decide(id, redis.call('HMGET', tkey(id), unpack(FIELDS))) then release(id) end
end

-- `id`, awaiting approval, goes on (`tt approve`, or its spec no longer asks for approval):
-- completed (its dependents released), or, when its [git] commit waits to be merged
-- (`approval_merge`, noted by its worker), back to its queue: the next attempt merges that
-- commit without running the model (not counted against its retries). Returns the new state.
local function go_on(id, reason)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'approval_merge', 'run_base', 'target', 'priority')
  redis.call('HDEL', k, 'awaiting_since')
  if f[1] == '1' then
    redis.call('HDEL', k, 'approval_merge')
    redis.call('HSET', k, 'run_base', tonumber(f[2] or 0) + 1)
    push_ready(id, f[3], f[4])
    return 'ready'
  end
  complete(id, nil, reason)
  return 'completed'
end

-- `id` awaits approval but may no longer be something that does: its spec was rewritten, or a
-- repair found it so. A work task whose model ran (`ran`) waits on while its spec asks for
-- approval and goes on (`go_on`) once it does not; anything else is settled as a waiting task
-- is: a gate awaits while what it waits for is completed (else blocked again), a group
-- completes with its members, a backlog task or a gate given an agent is queued to run.
-- Mirrored by plan/model.py (`recheck_awaiting`).
local function recheck_awaiting(id, ran)
  local k = tkey(id)
  local f = redis.call('HMGET', k, unpack(FIELDS))
  if f[1] ~= 'awaiting_approval' then return end
  if (f[3] or 'work') == 'work' and ran then
    if redis.call('HGET', k, 'approve') ~= '1' then go_on(id, 'approval no longer asked for') end
    return
  end
  if decide(id, f) then release(id) end
  wake(id)
end
