-- Record a task's work product (its branch, worktree, commit, merge stage: the `git_*` fields).
-- ARGV[4]: id; ARGV[5]: the fence: the attempt token it must still hold, or 'head:SHA' (the merge
-- queue acting on the commit SHA: only while that is still the task's `git_head` and the task is
-- not cancelled or failed, so a re-run or a cancel meanwhile is never written over), or '' (no
-- fence: `tt merge`); ARGV[6..]: field, value pairs; a value of '' deletes the field.
-- Returns 1, or 0 when the task is gone or the fence does not hold (nothing written).
local id, token = ARGV[4], ARGV[5]
local k = tkey(id)
local cur = redis.call('HMGET', k, 'token', 'state', 'git_head')
if not cur[2] then return 0 end
if token:sub(1, 5) == 'head:' then
  if cur[3] ~= token:sub(6) or cur[2] == 'cancelled' or cur[2] == 'failed' then return 0 end
elseif token ~= '' and cur[1] ~= token then
  return 0
end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', k, ARGV[i])
  else
    redis.call('HSET', k, ARGV[i], ARGV[i + 1])
  end
end
return 1
