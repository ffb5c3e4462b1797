-- `tt approve`: a task awaiting approval goes on (ready.lua `go_on`). ARGV[4]: id, [5]: who,
-- [6]: comment. Completed (its dependents released), or, when its [git] commit still waits to
-- be merged, back to its queue: the next attempt merges that commit without running the model.
-- Returns {1, new state}, or {0, its state} when it does not await approval (nothing written).
local id, by, comment = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local state = redis.call('HGET', k, 'state')
if state ~= 'awaiting_approval' then return {0, state or ''} end
redis.call('HSET', k, 'approved_by', by, 'approved_at', NOW, 'approval_comment', comment,
  'approved', '1')
event('task.approved', 'task', id, 'by', by, 'comment', comment)
local now = go_on(id, 'approved by ' .. by)
announce()
return {1, now}
