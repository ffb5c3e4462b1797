-- An agent process exits cleanly: drop its heartbeat lease if it is still its own, so the next
-- process for the same agent may start at once. ARGV[4]: agent name, ARGV[5]: instance token.
local key = P .. 'hb:' .. ARGV[4]
if redis.call('GET', key) == ARGV[5] then
  redis.call('DEL', key)
  return 1
end
return 0
