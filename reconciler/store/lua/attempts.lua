-- Attempts (prepended after lib.lua and ready.lua by store/scripts.py): an agent claims a task,
-- its attempt completes or fails (fenced by its token), due timers are promoted, mail is taken.


-- Append a record of an attempt of `id` to its history (JSON). Its times are written as they came
-- (NOW strings, full precision): cjson keeps 14 digits (0.1 ms), which would put an attempt's
-- start before the completion that released it in the same script.
-- `detail`: a JSON object (the attempt's ledger entry: exit class, session, tokens, cost…) whose
-- keys are added to the record, never over the ones written here.
local function with_detail(fields, detail)
  if not detail or detail == '' then return fields end
  local ok, extra = pcall(cjson.decode, detail)
  if ok and type(extra) == 'table' then
    for key, value in pairs(extra) do
      if fields[key] == nil and key ~= 'started_at' and key ~= 'finished_at' then
        fields[key] = value
      end
    end
  end
  return fields
end

local function record_attempt(id, fields, started_at, detail)
  local body = cjson.encode(with_detail(fields, detail)):sub(1, -2)
  if started_at and string.match(started_at, '^%d+%.?%d*$') then
    body = body .. ',"started_at":' .. started_at
  end
  redis.call('RPUSH', P .. 'attempts:' .. id, body .. ',"finished_at":' .. NOW .. '}')
end

-- The session `agent`'s model was started in for `id` (`note_model`: 'TASK SESSION'), that
-- model and the folder it ran in, so a retry of an attempt stopped from outside can resume it
-- (there only); nil when none is noted.
local function noted_session(id, agent)
  if not agent or agent == '' then return nil end
  local noted = redis.call('HMGET', P .. 'agent:' .. agent, 'model_session', 'model',
    'model_workdir')
  if noted[1] and noted[1]:sub(1, #id + 1) == id .. ' ' and #noted[1] > #id + 1 then
    local workdir = noted[3] ~= '' and noted[3] or nil
    return noted[1]:sub(#id + 2), noted[2] or nil, workdir
  end
  return nil
end

-- JSON [[id, agent, result], ...] of the tasks `deps_json` names (groups do no work: left out).
local function dep_results(deps_json)
  local out = {}
  if deps_json and deps_json ~= '' then
    for _, d in ipairs(cjson.decode(deps_json)) do
      local f = redis.call('HMGET', tkey(d), 'result', 'assignee', 'kind')
      if f[3] ~= 'group' then table.insert(out, {d, f[2] or '', f[1] or ''}) end
    end
  end
  if #out == 0 then return '[]' end
  return cjson.encode(out)
end

-- An agent claims `id`: ready → running with a fresh attempt token. Returns {attempt, spec,
-- previous error, results of its dependencies, the reason a person rejected the previous attempt
-- with ('' when it was not rejected: reject.lua's `rejected_attempt`)} (all the prompt needs),
-- or nil when the task is no
-- longer ready (cancelled, deleted or already taken: a stale queue entry is dropped), or held
-- back by a task whose `touches` overlap its own (`hold`). The same token again (a retry after
-- the connection dropped before the reply) gets the same claim back.
local function claim(id, agent, token)
  local k = tkey(id)
  local cur = redis.call('HMGET', k, 'state', 'token', 'attempt', 'spec', 'error', 'deps',
    'overlaps', 'order', 'waiting_for', 'rejected_attempt', 'rejection')
  if cur[1] == 'running' and cur[2] == token and token ~= '' then
    local previous = tostring(tonumber(cur[3] or 0) - 1)
    return {cur[3], cur[4], cur[5], dep_results(cur[6]), cur[10] == previous and cur[11] or ''}
  end
  if cur[1] ~= 'ready' then return nil end
  if cur[7] then
    local other = overlaps_now(id, cur[7], cur[8])
    if other then
      hold(id, other, cur[9])
      return nil
    end
    if cur[9] then redis.call('HDEL', k, 'waiting_for') end
  end
  local attempt = redis.call('HINCRBY', k, 'attempt', 1)
  redis.call('HSET', k, 'state', 'running', 'token', token, 'assignee', agent, 'started_at', NOW)
  redis.call('HDEL', k, 'finished_at', 'next_attempt_at')
  redis.call('HSET', P .. 'agent:' .. agent, 'task', id, 'state', 'working')
  event('task.claimed', 'task', id, 'agent', agent, 'attempt', attempt)
  local rejected = cur[10] == tostring(attempt - 1) and cur[11] or ''
  return {attempt, cur[4], cur[5], dep_results(cur[6]), rejected}
end

-- A suspended town (`tt suspend`, the `suspended` key) claims nothing: a ready task an agent
-- popped is parked (`parked`, in the order taken) until the town is resumed (`suspend.lua`), which
-- puts it back at the head of its queue, waking the agents idle there.
local function suspended() return redis.call('EXISTS', P .. 'suspended') == 1 end

local function park(id)
  if redis.call('HGET', tkey(id), 'state') == 'ready' then redis.call('RPUSH', P .. 'parked', id) end
end

-- The ledger entry of an attempt completed before its process exited (`tt task complete`, run by
-- the model): added to its record, the task's last, when that is still the current attempt's
-- and has none yet.
local function ledger_late(id, current, detail)
  local key = P .. 'attempts:' .. id
  local last = redis.call('LINDEX', key, -1)
  if not last then return end
  local rec, added = cjson.decode(last), with_detail({}, detail)
  local now = tostring(current)
  if rec.exit_class or rec.outcome ~= 'completed' or tostring(rec.attempt) ~= now
    or tostring(added.attempt) ~= now or rec.agent ~= added.agent then return end
  for k in pairs(rec) do added[k] = nil end
  -- Spliced in, so its times stay as they were written (full precision).
  local body = last:sub(1, -2) .. ',' .. cjson.encode(added):sub(2)
  if next(added) then redis.call('LSET', key, -1, body) end
end

-- The attempt `token` of `id` finished well: completed, result kept, dependents released; or,
-- for a task with `approve` not approved yet, awaiting approval. Returns 1, or 0 for a stale
-- attempt (rejected).
local function complete_attempt(id, token, result, detail)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'state',
    'approve', 'approved')
  if not f[5] or f[1] ~= token or token == '' then
    event('task.stale', 'task', id, 'outcome', 'completed', 'token', token)
    ledger_late(id, f[2], detail)
    return 0
  end
  record_attempt(id, {attempt = tonumber(f[2]), agent = f[3], outcome = 'completed'}, f[4],
    detail)
  redis.call('HSET', k, 'error', '')
  if f[6] == '1' and f[7] ~= '1' then
    -- `approve = true`: a person's word first (its [git] commit, if any, waits unmerged).
    await_approval(id, result, 'attempt ' .. f[2])
    release_agent(f[3], id)
    wake(id)
    return 1
  end
  complete(id, result, 'attempt ' .. f[2])
  release_agent(f[3], id)
  announce()
  return 1
end

-- The hash fields `...` of `id` after its token, or nil when `token` is not its current
-- attempt's (a late report of `outcome`: rejected, a `task.stale` event written).
local function current_attempt(id, token, outcome, ...)
  local f = redis.call('HMGET', tkey(id), 'token', ...)
  if f[1] ~= token or token == '' then
    event('task.stale', 'task', id, 'outcome', outcome, 'token', token)
    return nil
  end
  return f
end

-- The attempt `token` of `id` failed: retrying with backoff (base, cap seconds, jitter factor),
-- or failed when its retries (else `default_retries`) are used up or the failure is permanent
-- ('1'); a task that fails for good makes every task waiting on it upstream_failed. Returns
-- 'retrying', 'failed', or 'stale' (rejected: not the current attempt).
local function fail_attempt(id, token, err, permanent, base, cap, jitter, default_retries,
    detail)
  local k = tkey(id)
  local f = current_attempt(id, token, 'failed', 'attempt', 'assignee', 'started_at', 'run_base',
    'retries')
  if not f then return 'stale' end
  local attempt = tonumber(f[2])
  record_attempt(id, {attempt = attempt, agent = f[3], outcome = 'failed', error = err}, f[4],
    detail)
  release_agent(f[3], id)
  local retries = tonumber(f[6])
  if not retries or retries < 0 then retries = tonumber(default_retries) end
  local used = attempt - tonumber(f[5] or 0)
  if permanent == '1' or used > retries then
    redis.call('HSET', k, 'state', 'failed', 'error', err, 'finished_at', NOW, 'token', '')
    event('task.failed', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
      'permanent', permanent)
    release(id)  -- its dependents, and theirs, become upstream_failed (naming it)
    announce()
    return 'failed'
  end
  local delay = math.min(tonumber(base) * 2 ^ (used - 1), tonumber(cap)) * tonumber(jitter)
  local at = tonumber(NOW) + delay
  redis.call('HSET', k, 'state', 'retrying', 'error', err, 'next_attempt_at', at, 'token', '')
  redis.call('ZADD', P .. 'timers', at, id)
  wake(id)
  event('task.retrying', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
    'next_attempt_at', at)
  return 'retrying'
end

-- Timers that are due: retrying tasks whose backoff elapsed go back to their queue (idempotent;
-- any process may run it). Returns the count.
local function promote_due()
  local due = redis.call('ZRANGEBYSCORE', P .. 'timers', '-inf', NOW)
  local n = 0
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'timers', id)
    if redis.call('HGET', tkey(id), 'state') == 'retrying' then
      settle(id)
      n = n + 1
    end
  end
  announce()
  return n
end

-- Every message of agent `a`'s mailboxes, urgent first, moves to `seen` (capped at `seen_max`)
-- and, with `keep`, to its `answering` list, so a message is never held only in a process's
-- memory. Returns the whole `answering` list with `keep` (also what a previous process of the
-- agent took and died before answering), else what it took.
local function take_mail(a, seen_max, keep)
  local answering, seen = P .. 'answering:' .. a, P .. 'seen:' .. a
  local taken = {}
  for _, box in ipairs({{P .. 'urgent:' .. a, 'urgent'}, {P .. 'inbox:' .. a, 'normal'}}) do
    local msgs = redis.call('LRANGE', box[1], 0, -1)
    for _, m in ipairs(msgs) do
      if keep then redis.call('RPUSH', answering, m) end
      redis.call('RPUSH', seen, m)
      taken[#taken + 1] = m
    end
    if #msgs > 0 then
      redis.call('DEL', box[1])
      redis.call('LTRIM', seen, -tonumber(seen_max), -1)
      event('message.read', 'agent', a, 'count', #msgs, 'first', box[2])
    end
  end
  redis.call('DEL', P .. 'bell:' .. a)  -- all of it is taken: nothing left to wake for
  if not keep then return taken end
  return redis.call('LRANGE', answering, 0, -1)
end
