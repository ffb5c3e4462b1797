-- An agent claims a task it popped from a queue: ready → running with a fresh attempt token.
-- ARGV[3]: id, ARGV[4]: agent, ARGV[5]: token. Returns {attempt, spec} or false when the task
-- is no longer ready (cancelled, deleted or already taken: a stale queue entry is dropped).
local id, agent, token = ARGV[3], ARGV[4], ARGV[5]
local k = tkey(id)
if redis.call('HGET', k, 'state') ~= 'ready' then return false end
local attempt = redis.call('HINCRBY', k, 'attempt', 1)
redis.call('HSET', k, 'state', 'running', 'token', token, 'assignee', agent, 'started_at', NOW)
redis.call('HDEL', k, 'finished_at', 'next_attempt_at')
redis.call('HSET', P .. 'agent:' .. agent, 'task', id, 'state', 'working')
event('task.claimed', 'task', id, 'agent', agent, 'attempt', attempt)
return {attempt, redis.call('HGET', k, 'spec')}
