-- Move a notify rule's delivery cursor (`notify` hash, field ARGV[4]) from ARGV[5] to ARGV[6], a
-- compare-and-set: 1 when moved, 0 when the cursor was not ARGV[5] (another watcher moved it).
-- Moved before the event it passes is sent, so an event is told at most once per rule; fenced
-- (lib.lua): only the leading watcher tells.
local key = P .. 'notify'
if (redis.call('HGET', key, ARGV[4]) or '') ~= ARGV[5] then return 0 end
redis.call('HSET', key, ARGV[4], ARGV[6])
return 1
