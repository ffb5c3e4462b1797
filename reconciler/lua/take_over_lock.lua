-- Take over an apply lock whose holder is known dead (its pid is gone on this host): replace it
-- only if it is still that holder's. ARGV[3]: key, ARGV[4]: the dead holder's token,
-- ARGV[5]: our holder JSON, ARGV[6]: ttl ms. Returns 1 if the lock is now ours.
local cur = redis.call('GET', ARGV[3])
if cur and cjson.decode(cur).token == ARGV[4] then
  redis.call('SET', ARGV[3], ARGV[5], 'PX', ARGV[6])
  event('apply.lock_recovered', 'stale', cur)
  return 1
end
return 0
