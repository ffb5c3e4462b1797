-- `tt resume-provider NAME`: end the pause of provider ARGV[4] now; its idle agents are woken
-- (a `wake` on their control list ends their wait). Returns 1, or 0 when it was not paused.
local provider = ARGV[4]
if redis.call('HDEL', P .. 'pauses', provider) == 0 then return 0 end
event('provider.resumed', 'provider', provider, 'reason', 'tt resume-provider')
for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
  local f = redis.call('HMGET', P .. 'agent:' .. a, 'provider', 'state')
  if f[1] == provider and f[2] == 'idle' then redis.call('RPUSH', P .. 'ctl:' .. a, 'wake') end
end
return 1
