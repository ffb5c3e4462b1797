-- A town's source (`control/identity.py`): which repository path (or host and folder) manages
-- it. ARGV[4]: the source's key, ARGV[5]: JSON of the fields to record with it, ARGV[6]: the
-- field naming the calling folder, ARGV[7]: 'claim' (record it if none is, else note the
-- folder if its source is the recorded one) | 'adopt' (record it in place of any other).
-- Returns the record as it is afterwards (HGETALL); the caller compares its key.
local K = P .. 'source'
local mode = ARGV[7]
local recorded = redis.call('HGET', K, 'key')  -- the recorded source's key (not a Redis key)
if mode == 'adopt' or not recorded then
  local fields = cjson.decode(ARGV[5])
  local before = redis.call('HGET', K, 'source') or ''
  redis.call('DEL', K)
  for name, value in pairs(fields) do redis.call('HSET', K, name, value) end
  redis.call('HSET', K, 'key', ARGV[4], 'recorded_at', NOW, ARGV[6], NOW)
  if recorded and recorded ~= ARGV[4] then
    event('town.adopted', 'source', fields.source or '', 'from', before, 'by', fields.by or '')
  end
elseif recorded == ARGV[4] then
  redis.call('HSET', K, ARGV[6], NOW)
end
return redis.call('HGETALL', K)
