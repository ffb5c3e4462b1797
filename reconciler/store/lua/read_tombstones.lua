-- The tombstones (`deleted:ID`, delete_tasks.lua) among some ids, for a plan that would create
-- them: ARGV[4]: the number of fields n, ARGV[5..4+n]: the fields, then the ids. Returns one flat
-- array: for each id that has a tombstone, the id and its n values. Nothing is read when the town
-- has no tombstone (one ZCARD), so a first apply of 10,000 tasks pays one call.
if redis.call('ZCARD', P .. 'deleted') == 0 then return {} end
local n = tonumber(ARGV[4])
local fields = {}
for i = 1, n do fields[i] = ARGV[4 + i] end
local out, m = {}, 0
for i = 5 + n, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', P .. 'deleted', id) then
    local values = redis.call('HMGET', P .. 'deleted:' .. id, unpack(fields))
    if values[1] then
      out[m + 1] = id
      for j = 1, n do out[m + 1 + j] = values[j] end
      m = m + n + 1
    end
  end
end
return out
