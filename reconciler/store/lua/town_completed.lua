-- Whether every task of the town is in a final state (ARGV[4] = '1', counted by the caller:
-- ARGV[5..] are state, count pairs). Written once per time it becomes so: `completed` holds the
-- generation it was written for; a town not done drops it (a retry, new tasks), and an apply
-- that changed the tasks moves the generation. Returns 1 when `town.completed` was written.
local key = P .. 'completed'
if ARGV[4] ~= '1' then
  redis.call('DEL', key)
  return 0
end
local generation = redis.call('HGET', KEYS[1], 'generation') or '0'
if redis.call('GET', key) == generation then return 0 end
redis.call('SET', key, generation)
local counts, total = {}, 0
for i = 5, #ARGV - 1, 2 do
  counts[#counts + 1] = ARGV[i]
  counts[#counts + 1] = ARGV[i + 1]
  total = total + tonumber(ARGV[i + 1])
end
event('town.completed', 'generation', generation, 'count', total, unpack(counts))
return 1
