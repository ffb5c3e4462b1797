-- Whether every task of the town is in a final state, decided on the tasks as they are now
-- (one scan, in the script: nothing moves between the count and the decision). ARGV[4] = '0':
-- a count said the town is not done: forget the last finish. Else ARGV[4..] are the final
-- states. `completed` holds a digest of the task ids and their final states it was written
-- for: written once per finish, not again for the same one (an apply that only moved the
-- generation), again after a retry or with other tasks. Returns 1 when it was written.
local key = P .. 'completed'
if ARGV[4] == '0' then
  redis.call('DEL', key)
  return 0
end
local final = {}
for i = 4, #ARGV do final[ARGV[i]] = true end
local ids = redis.call('ZRANGE', P .. 'tasks', 0, -1)
table.sort(ids)
local counts, said = {}, {}
for i, id in ipairs(ids) do
  local state = redis.call('HGET', tkey(id), 'state') or ''
  if not final[state] then
    redis.call('DEL', key)
    return 0
  end
  counts[state] = (counts[state] or 0) + 1
  said[i] = id .. '=' .. state
end
if #ids == 0 then
  redis.call('DEL', key)
  return 0
end
-- (fakeredis, for unit tests, has no sha1hex: the text itself stands in)
local text = table.concat(said, '\n')
local digest = redis.sha1hex and redis.sha1hex(text) or text
if redis.call('GET', key) == digest then return 0 end
redis.call('SET', key, digest)
local states, fields = {}, {}
for state in pairs(counts) do states[#states + 1] = state end
table.sort(states)
for _, state in ipairs(states) do
  fields[#fields + 1] = state
  fields[#fields + 1] = counts[state]
end
local generation = redis.call('HGET', KEYS[1], 'generation') or '0'
event('town.completed', 'generation', generation, 'count', #ids, unpack(fields))
return 1
