-- Provider pauses and budgets, shared by the scripts that claim or settle attempts (prepended
-- after lib.lua by store/scripts.py for the scripts that name it).
-- `pauses` (hash provider -> JSON {until, reason, class}): a usage or rate limit stops every
-- agent of that provider claiming until `until`; `limit-backoff` (hash provider -> level): limits
-- in a row that named no reset (a success deletes it). `budgets` (hash): the limits apply wrote,
-- 'town', 'agent:ENTRY', and 'hard' = '1'; `spent` (hash): USD of the attempts recorded,
-- 'town', 'agent:ENTRY', 'task:ID', and 'counted:ID' = the last attempt of ID counted;
-- `exhausted` (hash scope -> when): the budgets reached, each told once by `budget.exhausted`;
-- `budget-wait` (set): tasks waiting on their own max_cost_usd (retrying, no timer).

-- The pause of `provider` while it lasts: its end (unix seconds), else nil. One found over is
-- deleted here (whoever looks first), with its `provider.resumed`.
local function paused_until(provider)
  if not provider or provider == '' then return nil end
  local raw = redis.call('HGET', P .. 'pauses', provider)
  if not raw then return nil end
  local p = cjson.decode(raw)
  if tonumber(p['until']) > tonumber(NOW) then return tonumber(p['until']) end
  redis.call('HDEL', P .. 'pauses', provider)
  event('provider.resumed', 'provider', provider, 'reason', 'reset reached')
  return nil
end

-- Pause `provider` until `reset` (unix seconds, '' = none named) or, with none still to come,
-- for the backoff of its limits in a row (`base` doubling per limit, up to `cap`; a success
-- deletes the level). The first limit in a row waits for the reset its provider named, however
-- near; from the second in a row (that reset did not end the limit) the backoff is a floor. No
-- pause lasts over `max` seconds (`provider.pause_capped` when it is cut). A later pause already
-- set is kept.
local function pause_provider(provider, reset, reason, class, base, cap, max)
  local level = redis.call('HINCRBY', P .. 'limit-backoff', provider, 1) - 1
  local at = tonumber(NOW) + math.min(tonumber(base) * 2 ^ level, tonumber(cap))
  local named = tonumber(reset)
  if named and named > tonumber(NOW) and (level == 0 or named > at) then at = named end
  local longest = tonumber(NOW) + tonumber(max)
  if at > longest then
    event('provider.pause_capped', 'provider', provider, 'named', at, 'resumes_at', longest)
    at = longest
  end
  local raw = redis.call('HGET', P .. 'pauses', provider)
  if raw and tonumber(cjson.decode(raw)['until']) >= at then return end
  redis.call('HSET', P .. 'pauses', provider,
    cjson.encode({['until'] = at, reason = reason, class = class, since = tonumber(NOW)}))
  event('provider.paused', 'provider', provider, 'resumes_at', at, 'reason', reason, 'class', class)
end

local function exhausted(scope, limit, spent)
  if redis.call('HSETNX', P .. 'exhausted', scope, NOW) == 1 then
    event('budget.exhausted', 'scope', scope, 'limit', limit, 'spent', spent)
  end
end

-- The budget (town, then the agent entry's) that keeps `entry` from starting an attempt, or nil.
local function budget_reached(entry)
  local f = redis.call('HMGET', P .. 'budgets', 'town', 'agent:' .. entry)
  local s = redis.call('HMGET', P .. 'spent', 'town', 'agent:' .. entry)
  if f[1] and tonumber(s[1] or 0) >= tonumber(f[1]) then
    exhausted('town', f[1], s[1] or '0')
    return 'town'
  end
  if f[2] and tonumber(s[2] or 0) >= tonumber(f[2]) then
    exhausted('agent:' .. entry, f[2], s[2] or '0')
    return 'agent:' .. entry
  end
  return nil
end

-- The task's own max_cost_usd (in its spec) is reached: read only once it has cost something.
local function own_budget_reached(id)
  local spent = tonumber(redis.call('HGET', P .. 'spent', 'task:' .. id) or 0)
  if spent <= 0 then return false end
  local ok, spec = pcall(cjson.decode, redis.call('HGET', tkey(id), 'spec') or '{}')
  local max = ok and type(spec) == 'table' and spec.max_cost_usd
  return type(max) == 'number' and spent >= max, max, spent
end

-- `id` (ready or retrying, in no queue) waits for its budget to be raised: retrying without a
-- timer, `waiting_for` = budget (tt status), until `budgets.lua` finds it under its limit.
local function budget_wait(id, max, spent)
  redis.call('ZREM', P .. 'timers', id)
  redis.call('HSET', tkey(id), 'state', 'retrying', 'waiting_for', 'budget', 'next_attempt_at', '')
  redis.call('SADD', P .. 'budget-wait', id)
  exhausted('task:' .. id, tostring(max), tostring(spent))
  wake(id)
end

-- Wake the idle agents `wanted(name, fields)` picks (fields: provider, state, base): a `wake` on
-- their control list ends their wait, so a pause or budget that ended is seen at once.
local function wake_idle(wanted)
  for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
    local f = redis.call('HMGET', P .. 'agent:' .. a, 'provider', 'state', 'base')
    if f[2] == 'idle' and wanted(a, f) then redis.call('RPUSH', P .. 'ctl:' .. a, 'wake') end
  end
end

-- `claim`, unless the task's own budget is reached (then it waits for it, and nil).
local function claim_in_budget(id, agent, token)
  if redis.call('HGET', tkey(id), 'state') == 'ready' then
    local over, max, spent = own_budget_reached(id)
    if over then
      budget_wait(id, max, spent)
      return nil
    end
  end
  return claim(id, agent, token)
end

-- The attempt `token` of `id` met a usage or rate limit: recorded (its class in `detail`), and
-- the task is ready again at the front of its queue without spending a retry (its `run_base`
-- moves on, as for an attempt handed back). Its `deferrals` in a row are counted (a completed or
-- failed attempt ends the row): past `max`, the limit is no excuse any more (a CLI that keeps
-- saying it, a task that keeps meeting it): 'capped', with `task.deferrals_capped`, and the
-- caller fails the attempt as any other (a retry spent). Returns 'deferred', 'capped' or
-- 'stale'.
local function defer_attempt(id, token, err, detail, max)
  local k = tkey(id)
  local f = current_attempt(id, token, 'deferred', 'attempt', 'assignee', 'started_at',
    'run_base', 'target')
  if not f then return 'stale' end
  local n = redis.call('HINCRBY', k, 'deferrals', 1)
  if n > tonumber(max) then
    redis.call('HDEL', k, 'deferrals')
    event('task.deferrals_capped', 'task', id, 'agent', f[3] or '', 'attempt', f[2],
      'deferrals', n - 1)
    return 'capped'
  end
  record_attempt(id, {attempt = tonumber(f[2]), agent = f[3], outcome = 'deferred',
    error = err}, f[4], detail)
  redis.call('HSET', k, 'state', 'ready', 'token', '', 'error', err, 'ready_at', NOW,
    'run_base', tonumber(f[5] or 0) + 1)
  redis.call('LPUSH', P .. 'queue:' .. f[6], id)
  release_agent(f[3], id)
  wake(id)
  event('task.deferred', 'task', id, 'agent', f[3] or '', 'attempt', f[2], 'error', err)
  return 'deferred'
end

local MERGING_STAGES = {committed = true, queued = true, waiting = true}

-- Running attempts under a hard budget just reached (`scope` 'town' or 'agent:ENTRY') are
-- stopped: recorded as killed (reason budget), the task ready again without spending a retry;
-- its token cleared, so its agent stops the model (its own report is then stale).
local function stop_running(scope)
  for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
    local g = redis.call('HMGET', P .. 'agent:' .. a, 'task', 'base')
    local entry = (g[2] and g[2] ~= '') and g[2] or a
    if g[1] and g[1] ~= '' and (scope == 'town' or scope == 'agent:' .. entry) then
      local id = g[1]
      local f = redis.call('HMGET', tkey(id), 'state', 'attempt', 'started_at', 'run_base',
        'target', 'assignee', 'git_stage')
      -- (a [git] attempt whose model is done and whose commit waits to merge costs no more)
      if f[1] == 'running' and f[6] == a and not MERGING_STAGES[f[7] or ''] then
        local session, model, workdir = noted_session(id, a)  -- so its retry resumes it
        record_attempt(id, {attempt = tonumber(f[2]), agent = a, outcome = 'failed',
          exit_class = 'killed', reason = 'budget', error = 'killed: budget ' .. scope ..
          ' reached', session_id = session, model = model, workdir = workdir}, f[3])
        redis.call('HSET', tkey(id), 'state', 'ready', 'token', '', 'ready_at', NOW,
          'run_base', tonumber(f[4] or 0) + 1)
        redis.call('LPUSH', P .. 'queue:' .. f[5], id)
        release_agent(a, id)
        wake(id)
        event('task.killed', 'task', id, 'agent', a, 'attempt', f[2], 'reason', 'budget')
      end
    end
  end
end

-- The report of an attempt `stop_running` killed comes after its record, stale (its token was
-- cleared): what it tells (tokens so far, duration, exit code, session…) is added to that record,
-- the keys it lacks, when it is the same attempt of the same agent.
local function ledger_killed(id, detail)
  if not detail or detail == '' then return end
  local key = P .. 'attempts:' .. id
  local last = redis.call('LINDEX', key, -1)
  if not last then return end
  local rec, added = cjson.decode(last), with_detail({}, detail)
  if rec.reason ~= 'budget' or rec.exit_class ~= 'killed' or rec.agent ~= added.agent
    or tostring(rec.attempt) ~= tostring(added.attempt) then return end
  for k in pairs(rec) do added[k] = nil end
  added.exit_class, added.result = nil, nil
  -- Spliced in, so its times stay as they were written (full precision).
  if next(added) then redis.call('LSET', key, -1, last:sub(1, -2) .. ',' .. cjson.encode(added):sub(2)) end
end

-- Add the cost of `id`'s attempt (its ledger entry `detail`) to what the town, the agent's
-- entry and the task spent, once, and only when its record landed in the task's history.
-- A budget it reaches is told; under budget_hard the attempts running under it are stopped;
-- a task that reached its own and would be retried waits for it instead.
local function count_cost(id, detail, entry)
  if not detail or detail == '' then return end
  local ok, d = pcall(cjson.decode, detail)
  if not ok or type(d) ~= 'table' or type(d.cost_usd) ~= 'number' or d.cost_usd <= 0 then return end
  local n = tonumber(d.attempt)
  local counted = tonumber(redis.call('HGET', P .. 'spent', 'counted:' .. id) or 0)
  if not n or n <= counted then return end
  local last = redis.call('LINDEX', P .. 'attempts:' .. id, -1)
  if not last then return end
  local rec = cjson.decode(last)
  if tonumber(rec.attempt) ~= n or rec.exit_class == nil then return end
  redis.call('HSET', P .. 'spent', 'counted:' .. id, n)
  for _, scope in ipairs({'town', 'agent:' .. entry, 'task:' .. id}) do
    redis.call('HINCRBYFLOAT', P .. 'spent', scope, d.cost_usd)
  end
  local reached = budget_reached(entry)
  if reached and redis.call('HGET', P .. 'budgets', 'hard') == '1' then stop_running(reached) end
  local state = redis.call('HGET', tkey(id), 'state')
  if state == 'retrying' or state == 'ready' then
    local over, max, spent = own_budget_reached(id)
    if over then
      unqueue(id, state, redis.call('HGET', tkey(id), 'target'))
      budget_wait(id, max, spent)
    end
  end
end
