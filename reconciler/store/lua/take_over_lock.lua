-- Take over an apply lock whose holder is known dead (its pid is gone on this host): replace it
-- only if it is still that holder's. ARGV[4]: key, ARGV[5]: the dead holder's token,
-- ARGV[6]: our holder JSON, ARGV[7]: ttl ms. Returns 1 if the lock is now ours.
local cur = redis.call('GET', ARGV[4])
if cur and cjson.decode(cur).token == ARGV[5] then
  redis.call('SET', ARGV[4], ARGV[6], 'PX', ARGV[7])
  event('apply.lock_recovered', 'stale', cur)
  return 1
end
return 0
