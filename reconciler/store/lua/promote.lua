-- Timers that are due: retrying tasks whose backoff elapsed go back to their queue.
-- Any process may run it (controller pass, idle agents); it is idempotent. Returns the count.
local due = redis.call('ZRANGEBYSCORE', P .. 'timers', '-inf', NOW)
local n = 0
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'timers', id)
  if redis.call('HGET', tkey(id), 'state') == 'retrying' then
    settle(id)
    n = n + 1
  end
end
announce()
return n
