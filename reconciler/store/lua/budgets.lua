-- Write the budgets of the files (apply) and release what waited for a budget now raised.
-- ARGV[4]: JSON {town = USD or absent, agents = {ENTRY = USD}, hard = bool}.
-- A budget no longer reached ends its exhaustion (`budget.resumed`; its idle agents are woken
-- to claim again); a task waiting for its own max_cost_usd goes back to its queue. Returns how
-- many tasks were released.
local b = cjson.decode(ARGV[4])
local key = P .. 'budgets'
redis.call('DEL', key)
if type(b.town) == 'number' then redis.call('HSET', key, 'town', tostring(b.town)) end
for entry, usd in pairs(b.agents or {}) do
  if type(usd) == 'number' then redis.call('HSET', key, 'agent:' .. entry, tostring(usd)) end
end
if b.hard then redis.call('HSET', key, 'hard', '1') end

local released = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. 'budget-wait')) do
  local f = redis.call('HMGET', tkey(id), 'state', 'waiting_for')
  if f[1] ~= 'retrying' or f[2] ~= 'budget' then
    redis.call('SREM', P .. 'budget-wait', id)
  elseif not own_budget_reached(id) then
    redis.call('SREM', P .. 'budget-wait', id)
    redis.call('HDEL', tkey(id), 'waiting_for')
    settle(id)
    released = released + 1
  end
end
local scopes = redis.call('HKEYS', P .. 'exhausted')
for _, scope in ipairs(scopes) do
  local over
  if scope:sub(1, 5) == 'task:' then
    local id = scope:sub(6)
    over = redis.call('SISMEMBER', P .. 'budget-wait', id) == 1
  else
    local limit = redis.call('HGET', key, scope)
    over = limit and tonumber(redis.call('HGET', P .. 'spent', scope) or 0) >= tonumber(limit)
  end
  if not over then
    redis.call('HDEL', P .. 'exhausted', scope)
    event('budget.resumed', 'scope', scope)
    if scope:sub(1, 5) ~= 'task:' then  -- its idle agents claim again now, not at a poll
      wake_idle(function(a, f)
        return scope == 'town' or scope == 'agent:' .. ((f[3] and f[3] ~= '') and f[3] or a)
      end)
    end
  end
end
announce()
-- Tasks moved after the apply planned: its no-op fast path must look again (as upsert_tasks).
if released > 0 then redis.call('HDEL', KEYS[1], 'clean', 'clean_state') end
return released
