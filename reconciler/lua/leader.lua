-- Hold the town's leader lease. ARGV[3]: holder id, ARGV[4]: lease ms.
-- Returns {status, epoch}: status 1 = renewed, 2 = newly acquired (epoch incremented), 0 = held
-- by another (its epoch). The epoch fences writes of a leader that lost its lease.
local key = P .. 'leader'
local epoch_key = P .. 'leader:epoch'
local cur = redis.call('GET', key)
if cur == ARGV[3] then
  redis.call('PEXPIRE', key, ARGV[4])
  return {1, tonumber(redis.call('GET', epoch_key) or 0)}
end
if not cur then
  redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
  local epoch = redis.call('INCR', epoch_key)
  event('leader.acquired', 'holder', ARGV[3], 'epoch', epoch)
  return {2, epoch}
end
return {0, tonumber(redis.call('GET', epoch_key) or 0)}
