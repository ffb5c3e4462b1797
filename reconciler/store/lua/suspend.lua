-- Suspend (ARGV[4] = '1') or resume ('0') the town; ARGV[5]: who asked (`tt suspend`, a watcher).
-- Suspended, no agent claims a task (lib.lua's `suspended`); resumed, the tasks agents popped
-- meanwhile (`parked`) go back to the head of their queues in the order they were taken, which
-- wakes the agents blocked there. Returns 1 when the town changed, 0 when it already was so.
local key, parked = P .. 'suspended', P .. 'parked'
if ARGV[4] == '1' then
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('SET', key, NOW)
  event('town.suspended', 'by', ARGV[5])
  return 1
end
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('DEL', key)
local ids = redis.call('LRANGE', parked, 0, -1)
redis.call('DEL', parked)
for i = #ids, 1, -1 do
  local f = redis.call('HMGET', tkey(ids[i]), 'state', 'target')
  if f[1] == 'ready' and f[2] then redis.call('LPUSH', P .. 'queue:' .. f[2], ids[i]) end
end
event('town.resumed', 'by', ARGV[5], 'count', #ids)
return 1
