-- Record a task's work product (its branch, worktree, commit, merge stage: the `git_*` fields).
-- ARGV[4]: id, ARGV[5]: the attempt token it must still hold ('' = the merge queue acting on the
-- task whatever its attempt), ARGV[6..]: field, value pairs; a value of '' deletes the field.
-- Returns 1, or 0 when the task is gone or the attempt is stale (nothing written).
local id, token = ARGV[4], ARGV[5]
local k = tkey(id)
local cur = redis.call('HMGET', k, 'token', 'state')
if not cur[2] then return 0 end
if token ~= '' and cur[1] ~= token then return 0 end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', k, ARGV[i])
  else
    redis.call('HSET', k, ARGV[i], ARGV[i + 1])
  end
end
return 1
