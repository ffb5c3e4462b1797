-- Hold the town's leader lease. ARGV[4]: holder id, ARGV[5]: lease ms.
-- Returns {status, epoch}: status 1 = renewed, 2 = newly acquired (epoch incremented), 0 = held
-- by another (its epoch). The epoch fences writes of a leader that lost its lease.
local key = P .. 'leader'
local epoch_key = P .. 'leader:epoch'
local cur = redis.call('GET', key)
if cur == ARGV[4] then
  redis.call('PEXPIRE', key, ARGV[5])
  return {1, tonumber(redis.call('GET', epoch_key) or 0)}
end
if not cur then
  redis.call('SET', key, ARGV[4], 'PX', ARGV[5])
  local epoch = redis.call('INCR', epoch_key)
  event('leader.acquired', 'holder', ARGV[4], 'epoch', epoch)
  return {2, epoch}
end
return {0, tonumber(redis.call('GET', epoch_key) or 0)}
