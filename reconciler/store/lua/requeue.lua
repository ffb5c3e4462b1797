-- Dispatch repair: settle tasks the plan found ready-but-unqueued, blocked-with-deps-done, or
-- waiting in the wrong one of blocked / upstream_failed / skipped (a crash between two writes,
-- or a town written before upstream_failed existed), or awaiting approval though they should
-- not (ready.lua `recheck_awaiting`; a town edited before a tt that rechecked them). Idempotent: a task already queued is not queued twice.
-- ARGV[4]: JSON array of ids.
local ids = cjson.decode(ARGV[4])
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again
local n = 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', tkey(id), 'state', 'target')
  if f[1] == 'ready' or f[1] == 'blocked' or f[1] == 'upstream_failed' or f[1] == 'skipped' then
    unqueue(id, 'ready', f[2])
    settle(id)
    wake(id)  -- it may have left ready
    n = n + 1
  elseif f[1] == 'awaiting_approval' then
    -- (a work task whose model ran: attempts since its last re-run)
    local g = redis.call('HMGET', tkey(id), 'attempt', 'run_base')
    recheck_awaiting(id, tonumber(g[1] or 0) > tonumber(g[2] or 0))
    n = n + 1
  end
end
announce()
return n
