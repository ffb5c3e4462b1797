-- An agent claims a task it popped from a queue (lib.lua's `claim`). ARGV[4]: id, ARGV[5]: agent,
-- ARGV[6]: token. Returns {attempt, spec, previous error, results of its dependencies,
-- rejection} or false
-- when the task is no longer ready (a stale queue entry is dropped), or the town is suspended
-- (the task is parked until it is resumed).
if suspended() and redis.call('HGET', tkey(ARGV[4]), 'token') ~= ARGV[6] then
  park(ARGV[4])
  return false
end
return claim(ARGV[4], ARGV[5], ARGV[6]) or false
