-- Put a task into the town's merge queue (once: a task already queued keeps its place).
-- ARGV[4]: id. Returns its position (0 = at the head).
local q = P .. 'mergeq'
local at = redis.call('LPOS', q, ARGV[4])
if at then return at end
redis.call('RPUSH', q, ARGV[4])
return redis.call('LLEN', q) - 1
