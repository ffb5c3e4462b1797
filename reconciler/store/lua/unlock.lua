-- Release a lock only if we still hold it (compare-and-delete). ARGV[4]: key, ARGV[5]: token.
local cur = redis.call('GET', ARGV[4])
if cur and cjson.decode(cur).token == ARGV[5] then
  redis.call('DEL', ARGV[4])
  return 1
end
return 0
