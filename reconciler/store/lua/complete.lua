-- The current attempt finished well: completed, result kept, dependents released (same script).
-- ARGV[4]: id, ARGV[5]: token, ARGV[6]: result. Returns 1, or 0 for a stale attempt (rejected).
local id, token, result = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'state')
if not f[5] or f[1] ~= token or token == '' then
  event('task.stale', 'task', id, 'outcome', 'completed', 'token', token)
  return 0
end
redis.call('RPUSH', P .. 'attempts:' .. id, cjson.encode({attempt = tonumber(f[2]),
  agent = f[3], outcome = 'completed', started_at = tonumber(f[4]), finished_at = tonumber(NOW)}))
redis.call('HSET', k, 'error', '')
complete(id, result, 'attempt ' .. f[2])
release_agent(f[3], id)
announce()
return 1
