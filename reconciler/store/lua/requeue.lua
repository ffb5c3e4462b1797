-- Dispatch repair: settle tasks the plan found ready-but-unqueued or blocked-with-deps-done
-- (after a crash between two writes). Idempotent: a task already queued is not queued twice.
-- ARGV[4]: JSON array of ids.
local ids = cjson.decode(ARGV[4])
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again
local n = 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', tkey(id), 'state', 'target')
  if f[1] == 'ready' or f[1] == 'blocked' then
    unqueue(id, 'ready', f[2])
    settle(id)
    n = n + 1
  end
end
return n
