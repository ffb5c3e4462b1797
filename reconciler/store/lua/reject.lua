-- `tt reject`: a task awaiting approval is reopened with the reason (its next attempt's prompt
-- has it: the task's `error`, 'rejected: REASON'), counting against its retries as a failed
-- attempt does; failed (`rejected: REASON`) when they are spent, and a gate (no model to run
-- again) fails at once: what waits for it is upstream_failed (run_if = failure tasks run).
-- ARGV[4]: id, [5]: who, [6]: reason, [7]: the town's default retries.
-- Returns {1, new state}, or {0, its state} when it does not await approval (nothing written).
local id, by, reason = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local f = redis.call('HMGET', k, 'state', 'kind', 'attempt', 'run_base', 'retries', 'target',
  'priority', 'git_stage')
if f[1] ~= 'awaiting_approval' then return {0, f[1] or ''} end
local err = 'rejected: ' .. reason
redis.call('HSET', k, 'rejected_by', by, 'rejected_at', NOW, 'rejection', reason, 'error', err,
  'rejected_attempt', f[3] or '0')
redis.call('HDEL', k, 'awaiting_since', 'approved', 'approval_merge')
event('task.rejected', 'task', id, 'by', by, 'reason', reason)
local retries = tonumber(f[5])
if not retries or retries < 0 then retries = tonumber(ARGV[7]) end
local used = tonumber(f[3] or 0) - tonumber(f[4] or 0)
if f[2] == 'gate' or used > retries then
  redis.call('HSET', k, 'state', 'failed', 'finished_at', NOW, 'token', '')
  event('task.failed', 'task', id, 'attempt', f[3] or '0', 'error', err, 'permanent', '1')
  release(id)
  announce()
  return {1, 'failed'}
end
-- Its [git] commit is not merged: the next attempt works on from its branch, model and all.
if f[8] and f[8] ~= '' then redis.call('HSET', k, 'git_stage', 'rejected') end
push_ready(id, f[6], f[7])
return {1, 'ready'}
