-- `tt approve`: a task awaiting approval goes on. ARGV[4]: id, [5]: who, [6]: comment.
-- Completed (its dependents released), or, when its [git] commit still waits to be merged
-- (`approval_merge`, noted by its worker), back to its queue: the next attempt merges that
-- commit without running the model and completes it (not counted against its retries).
-- Returns {1, new state}, or {0, its state} when it does not await approval (nothing written).
local id, by, comment = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local f = redis.call('HMGET', k, 'state', 'approval_merge', 'attempt', 'run_base', 'target',
  'priority')
if f[1] ~= 'awaiting_approval' then return {0, f[1] or ''} end
redis.call('HSET', k, 'approved_by', by, 'approved_at', NOW, 'approval_comment', comment,
  'approved', '1')
redis.call('HDEL', k, 'awaiting_since')
event('task.approved', 'task', id, 'by', by, 'comment', comment)
if f[2] == '1' then
  redis.call('HDEL', k, 'approval_merge')
  redis.call('HSET', k, 'run_base', tonumber(f[4] or 0) + 1)
  push_ready(id, f[5], f[6])
  return {1, 'ready'}
end
complete(id, nil, 'approved by ' .. by)
announce()
return {1, 'completed'}
