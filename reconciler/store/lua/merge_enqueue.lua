-- Put a task into the town's merge queue (once: a task already queued keeps its place).
-- ARGV[4]: id; ARGV[5]: '' (tt merge: as it is), or the attempt token that queues its commit:
-- refused (-1) unless that attempt is still current and its work is not through already
-- (merged, unchanged, reopened by a conflict or a failed check); the stage is then `queued`.
-- Returns its position (0 = at the head), or -1.
local q = P .. 'mergeq'
local id, token = ARGV[4], ARGV[5] or ''
if token ~= '' then
  local f = redis.call('HMGET', tkey(id), 'token', 'git_stage')
  local through = {merged = true, unchanged = true, conflict = true, check_failed = true,
    merge_failed = true}
  if f[1] ~= token or through[f[2] or ''] then return -1 end
  redis.call('HSET', tkey(id), 'git_stage', 'queued')
end
local at = redis.call('LPOS', q, id)
if at then return at end
redis.call('RPUSH', q, id)
return redis.call('LLEN', q) - 1
