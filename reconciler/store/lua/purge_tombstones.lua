-- Tombstones past `keep_deleted` are dropped for good (delete_tasks.lua makes them).
-- ARGV[4]: the cutoff (unix seconds): tombstones of tasks pruned before it go. Returns the count.
local n = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'deleted', '-inf', ARGV[4], 'LIMIT', 0, 1000)) do
  redis.call('DEL', P .. 'deleted:' .. id)
  redis.call('DEL', P .. 'deleted-attempts:' .. id)
  -- What it cost stays in the town's and its agents' sums; its own count goes with it (a task
  -- with its id later starts at attempt 1, every attempt of its to be counted).
  redis.call('HDEL', P .. 'spent', 'counted:' .. id, 'task:' .. id)
  redis.call('HDEL', P .. 'exhausted', 'task:' .. id)
  redis.call('ZREM', P .. 'deleted', id)
  n = n + 1
end
if n > 0 then event('tasks.purged', 'count', n) end
return n
