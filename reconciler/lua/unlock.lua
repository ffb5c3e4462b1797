-- Release a lock only if we still hold it (compare-and-delete). ARGV[3]: key, ARGV[4]: token.
local cur = redis.call('GET', ARGV[3])
if cur and cjson.decode(cur).token == ARGV[4] then
  redis.call('DEL', ARGV[3])
  return 1
end
return 0
