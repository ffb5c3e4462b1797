-- Read many task hashes in one round trip, for the controller's observed state.
-- ARGV[4]: the number of fields n, ARGV[5..4+n]: the fields, then the task ids. Returns one flat
-- array: for each id, its n values (nil where absent; a task without a hash has only nils).
-- Flat, not a JSON document: the reply is encoded in C, and no row table is built per task.
local n = tonumber(ARGV[4])
local fields = {}
for i = 1, n do fields[i] = ARGV[4 + i] end
local out, m = {}, 0
for i = 5 + n, #ARGV do
  local values = redis.call('HMGET', tkey(ARGV[i]), unpack(fields))
  for j = 1, n do out[m + j] = values[j] end
  m = m + n
end
return out
