-- An agent claims a task it popped from a queue: ready → running with a fresh attempt token.
-- ARGV[4]: id, ARGV[5]: agent, ARGV[6]: token. Returns {attempt, spec, previous error, results
-- of its dependencies} (all the prompt needs, in this one round trip) or false when the task is
-- no longer ready (cancelled, deleted or already taken: a stale queue entry is dropped).
-- The same token again (a retry after the connection dropped before the reply) gets the same
-- claim back, so a claim that landed is never dropped by its own agent.
local id, agent, token = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)

-- JSON [[id, agent, result], ...] of the tasks it depends on (groups do no work: left out).
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

local cur = redis.call('HMGET', k, 'state', 'token', 'attempt', 'spec', 'error', 'deps')
if cur[1] == 'running' and cur[2] == token and token ~= '' then
  return {cur[3], cur[4], cur[5], dep_results(cur[6])}
end
if cur[1] ~= 'ready' then return false end
local attempt = redis.call('HINCRBY', k, 'attempt', 1)
redis.call('HSET', k, 'state', 'running', 'token', token, 'assignee', agent, 'started_at', NOW)
redis.call('HDEL', k, 'finished_at', 'next_attempt_at')
redis.call('HSET', P .. 'agent:' .. agent, 'task', id, 'state', 'working')
event('task.claimed', 'task', id, 'agent', agent, 'attempt', attempt)
return {attempt, cur[4], cur[5], dep_results(cur[6])}
