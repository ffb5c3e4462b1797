-- Give a running task back to its queue (front): the agent stopped, or was found dead.
-- The attempt is kept in the history but does not count against the task's retries.
-- ARGV[4]: id, ARGV[5]: token ('*' = whatever attempt is current; '*:AGENT' = the current attempt
-- if AGENT runs it: the controller reclaiming a dead agent's task, whose marker may be stale),
-- ARGV[6]: reason. Returns 1 or 0.
local id, token, reason = ARGV[4], ARGV[5], ARGV[6]
local k = tkey(id)
local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'state', 'target',
  'run_base')
if f[5] ~= 'running' then return 0 end
if token:sub(1, 2) == '*:' then
  if f[3] ~= token:sub(3) then return 0 end
elseif token ~= '*' and f[1] ~= token then
  return 0
end
local record = {attempt = tonumber(f[2]), agent = f[3], outcome = 'handed back', reason = reason}
-- The session its model ran in, so a retry can resume it.
record.session_id, record.model, record.workdir = noted_session(id, f[3])
record_attempt(id, record, f[4])
redis.call('HSET', k, 'state', 'ready', 'token', '', 'run_base', tonumber(f[7] or 0) + 1,
  'ready_at', NOW)
redis.call('LPUSH', P .. 'queue:' .. f[6], id)
release_agent(f[3], id)
wake(id)  -- what its `touches` held back may run (or wait again, behind it in the file order)
event('task.handed_back', 'task', id, 'agent', f[3] or '', 'attempt', f[2], 'reason', reason)
return 1
