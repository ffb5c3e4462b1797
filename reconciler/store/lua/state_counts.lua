-- How many tasks are in each state (a town's health reads them on every change): returns
-- {state, count, state, count, ...}, tasks without a state counted under ''.
local counts = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'tasks', 0, -1)) do
  local s = redis.call('HGET', tkey(id), 'state') or ''
  counts[s] = (counts[s] or 0) + 1
end
local out = {}
for s, n in pairs(counts) do
  out[#out + 1] = s
  out[#out + 1] = n
end
return out
