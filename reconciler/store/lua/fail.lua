-- The current attempt failed: retrying with backoff, or failed when retries are exhausted or the
-- failure is permanent. ARGV[4]: id, [5]: token, [6]: error, [7]: '1' if permanent,
-- [8]: backoff base s, [9]: backoff cap s, [10]: jitter factor (0.9..1.1), [11]: default retries.
-- Returns 'retrying', 'failed', or 'stale' (rejected: not the current attempt). A task that
-- fails for good makes every task waiting on it upstream_failed, in this script.
local id, token, err = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'run_base', 'retries')
if f[1] ~= token or token == '' then
  event('task.stale', 'task', id, 'outcome', 'failed', 'token', token)
  return 'stale'
end
local attempt = tonumber(f[2])
redis.call('RPUSH', P .. 'attempts:' .. id, cjson.encode({attempt = attempt, agent = f[3],
  outcome = 'failed', error = err, started_at = tonumber(f[4]), finished_at = tonumber(NOW)}))
release_agent(f[3], id)
local retries = tonumber(f[6])
if not retries or retries < 0 then retries = tonumber(ARGV[11]) end
local used = attempt - tonumber(f[5] or 0)
if ARGV[7] == '1' or used > retries then
  redis.call('HSET', k, 'state', 'failed', 'error', err, 'finished_at', NOW, 'token', '')
  event('task.failed', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
    'permanent', ARGV[7])
  release(id)  -- its dependents, and theirs, become upstream_failed (naming it)
  announce()
  return 'failed'
end
local delay = math.min(tonumber(ARGV[8]) * 2 ^ (used - 1), tonumber(ARGV[9])) * tonumber(ARGV[10])
local at = tonumber(NOW) + delay
redis.call('HSET', k, 'state', 'retrying', 'error', err, 'next_attempt_at', at, 'token', '')
redis.call('ZADD', P .. 'timers', at, id)
event('task.retrying', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
  'next_attempt_at', at)
return 'retrying'
