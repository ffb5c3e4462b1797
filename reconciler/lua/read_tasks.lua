-- Read many task hashes in one round trip, for the controller's observed state.
-- ARGV[3]: JSON array of fields, ARGV[4..]: task ids. Returns JSON text: one array per id,
-- [id, value of each field...] (null where absent; a task without a hash has only nulls).
local fields = cjson.decode(ARGV[3])
local rows = {}
for i = 4, #ARGV do
  local values = redis.call('HMGET', tkey(ARGV[i]), unpack(fields))
  local row = {ARGV[i]}
  for j = 1, #fields do row[j + 1] = values[j] or cjson.null end
  rows[#rows + 1] = row
end
if #rows == 0 then return '[]' end
return cjson.encode(rows)
