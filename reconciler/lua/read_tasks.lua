-- Read many task hashes in one round trip, for the controller's observed state.
-- ARGV[4]: JSON array of fields, ARGV[5..]: task ids. Returns JSON text: one array per id,
-- [id, value of each field...] (null where absent; a task without a hash has only nulls).
local fields = cjson.decode(ARGV[4])
local rows = {}
for i = 5, #ARGV do
  local values = redis.call('HMGET', tkey(ARGV[i]), unpack(fields))
  local row = {ARGV[i]}
  for j = 1, #fields do row[j + 1] = values[j] or cjson.null end
  rows[#rows + 1] = row
end
if #rows == 0 then return '[]' end
return cjson.encode(rows)
