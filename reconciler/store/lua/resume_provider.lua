-- `tt resume-provider NAME`: end the pause of provider ARGV[4] now; its idle agents are woken
-- (a `wake` on their control list ends their wait). Returns 1, or 0 when it was not paused.
local provider = ARGV[4]
if redis.call('HDEL', P .. 'pauses', provider) == 0 then return 0 end
event('provider.resumed', 'provider', provider, 'reason', 'tt resume-provider')
wake_idle(function(_, f) return f[1] == provider end)
return 1
