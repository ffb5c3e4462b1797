-- An agent process renews its heartbeat lease, only while it is still the agent's instance: the
-- record names its token and a pid (a recorded death clears the pid, a start's claim both) and no
-- other process holds the lease. A process superseded (its death recorded while it was cut off,
-- a new one started) gets 0 and stops; it never takes the lease back from the newer one.
-- ARGV[4]: agent name, ARGV[5]: its instance token, ARGV[6]: lease ms ('0': only check).
local hb = P .. 'hb:' .. ARGV[4]
local k = P .. 'agent:' .. ARGV[4]
local held = redis.call('GET', hb)
local rec = redis.call('HMGET', k, 'instance', 'pid')
if (held and held ~= ARGV[5]) or rec[1] ~= ARGV[5] or (rec[2] or '') == '' then return 0 end
if ARGV[6] == '0' then return 1 end
redis.call('SET', hb, ARGV[5], 'PX', ARGV[6])
redis.call('HSET', k, 'heartbeat_at', NOW)
return 1
