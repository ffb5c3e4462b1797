-- One turn of an agent between two attempts, in one round trip: report how its last attempt
-- ended (fenced by its token; the mail it saw through dropped), promote due timers, then claim
-- its next task in the order of its blocking pop (control requests and mail make it return idle,
-- so that pop takes them), with the mail for the prompt. A suspended town claims nothing: a
-- popped task is parked for the resume (lib.lua's `park`).
-- ARGV[4]: agent, [5]: 'completed' | 'failed' | '' (no attempt to report), [6]: id, [7]: token,
-- [8]: result or error, [9]: '1' if permanent, [10]: backoff base s, [11]: cap s, [12]: jitter,
-- [13]: default retries, [14]: JSON list of the messages the attempt saw through, [15]: its
-- ledger entry (JSON object, '' = none), [16]: the next attempt's token ('' = claim nothing),
-- [17]: how many `seen` keeps, [18]: an id the agent popped ('' = none), [19]: JSON of its
-- limits (limits_lib.lua): {provider, entry (its town.toml agent), instance (the process's token:
-- a superseded one claims nothing), and for an attempt 'deferred' by a usage or rate limit: reset ('' = none named), reason, class, base, cap (its backoff),
-- max (the longest pause), deferrals (how many in a row a task may have)},
-- [20..]: its queue targets, the backlog last.
-- Returns {outcome, seconds to the next timer or '', attempt, id, spec, error, deps, mail...};
-- no attempt and no id when nothing was claimed: {outcome, timer, why} when its provider is
-- paused ('paused:UNTIL') or a budget is reached ('budget:SCOPE'), or the process is superseded
-- ('superseded').
local agent, token = ARGV[4], ARGV[16]
local lim = cjson.decode(ARGV[19])
local T0 = 20
local akey = P .. 'agent:' .. agent
local outcome = ''
if ARGV[5] == 'completed' then
  outcome = tostring(complete_attempt(ARGV[6], ARGV[7], ARGV[8], ARGV[15]))
elseif ARGV[5] == 'failed' then
  outcome = fail_attempt(ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12],
    ARGV[13], ARGV[15])
elseif ARGV[5] == 'deferred' then
  outcome = defer_attempt(ARGV[6], ARGV[7], ARGV[8], ARGV[15], lim.deferrals)
  if outcome ~= 'stale' then
    pause_provider(lim.provider, lim.reset, lim.reason, lim.class, lim.base, lim.cap, lim.max)
  end
  if outcome == 'capped' then
    outcome = fail_attempt(ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12],
      ARGV[13], ARGV[15])
  end
end
if outcome == 'stale' and ARGV[5] ~= 'completed' then ledger_killed(ARGV[6], ARGV[15]) end
if outcome == '1' or outcome == 'retrying' or outcome == 'failed' then
  redis.call('HDEL', tkey(ARGV[6]), 'deferrals')  -- the row of limits is over
end
if outcome == '1' then redis.call('HDEL', P .. 'limit-backoff', lim.provider) end
if ARGV[5] ~= '' then count_cost(ARGV[6], ARGV[15], lim.entry) end
-- A process superseded (`heartbeat.lua`: the record names another instance, or no pid): its
-- report above stands (fenced by its token), but it writes nothing of the agent's and claims
-- nothing; a task it popped goes back to its queue's front.
if (lim.instance or '') ~= '' then
  local own = redis.call('HMGET', akey, 'instance', 'pid')
  if own[1] ~= lim.instance or (own[2] or '') == '' then
    local f = redis.call('HMGET', tkey(ARGV[18]), 'state', 'target')
    if ARGV[18] ~= '' and f[1] == 'ready' then
      redis.call('LPUSH', P .. 'queue:' .. f[2], ARGV[18])
    end
    return {outcome, '', 'superseded'}
  end
end
if ARGV[5] ~= '' then redis.call('HSET', akey, 'model_pid', '') end
if ARGV[14] ~= '' then
  for _, raw in ipairs(cjson.decode(ARGV[14])) do
    redis.call('LREM', P .. 'answering:' .. agent, 1, raw)
  end
end
promote_due()
local first = redis.call('ZRANGE', P .. 'timers', 0, 0, 'WITHSCORES')
local timer = ''
if first[2] then timer = tostring(math.max(0, tonumber(first[2]) - tonumber(NOW))) end

local function claimed(id, c)
  local out = {outcome, timer, c[1], id, c[2] or '', c[3] or '', c[4], c[5]}
  for _, m in ipairs(take_mail(agent, ARGV[17], true)) do table.insert(out, m) end
  return out
end

local why = nil
if token ~= '' then
  -- A retry of a turn whose reply was lost: the claim it made, again.
  local cur = redis.call('HGET', akey, 'task')
  if cur and cur ~= '' and redis.call('HGET', tkey(cur), 'token') == token then
    return claimed(cur, claim(cur, agent, token))
  end
  if not suspended() then
    local till = paused_until(lim.provider)
    why = till and ('paused:' .. till) or budget_reached(lim.entry)
    if why and not till then why = 'budget:' .. why end
  end
  if suspended() then
    if ARGV[18] ~= '' then park(ARGV[18]) end  -- no claim: the popped task waits for resume
  elseif why then
    -- No claim while paused or out of budget: a popped task goes back to its queue's front.
    local f = redis.call('HMGET', tkey(ARGV[18]), 'state', 'target')
    if ARGV[18] ~= '' and f[1] == 'ready' then
      redis.call('LPUSH', P .. 'queue:' .. f[2], ARGV[18])
    end
  elseif ARGV[18] ~= '' then
    local c = claim_in_budget(ARGV[18], agent, token)
    if c then return claimed(ARGV[18], c) end
  end
  if not suspended() and not why and redis.call('LLEN', P .. 'ctl:' .. agent) == 0 then
    for i = T0, #ARGV do
      if i == #ARGV and redis.call('LLEN', P .. 'bell:' .. agent) > 0 then break end
      local q = P .. 'queue:' .. ARGV[i]
      for _ = 1, 100 do  -- stale entries (cancelled, taken) are dropped, as the pop does
        local id = redis.call('LPOP', q)
        if not id then break end
        local c = claim_in_budget(id, agent, token)
        if c then return claimed(id, c) end
      end
    end
  end
end
if ARGV[5] ~= '' then
  redis.call('HSET', akey, 'state', 'idle', 'task', '')
end
if why then return {outcome, timer, why} end
return {outcome, timer}
