-- Compare-and-set on an agent's record, for the fleet: several `tt` processes heal one town
-- without the apply lock (a watcher's heal pass, `tt restart`), so of two that found an agent
-- dead, one records the death and one starts the new process; the other changes nothing.
-- ARGV[4]: agent name; ARGV[5]: the spawn id and ARGV[6]: the pid the caller read ('*' = any);
-- ARGV[7]: JSON object of the fields to write; ARGV[8]: '1' for a start, which also drops the
-- dead process's heartbeat lease if it is still that instance's (ARGV[9]: its token) and its
-- stale control requests. Returns 1, or 0 when the record no longer shows what the caller read.
-- Fields naming a `node` move the agent to that node's index (`nodeagents:N`, keys.node_agents).
local name = ARGV[4]
local k = P .. 'agent:' .. name
local cur = redis.call('HMGET', k, 'spawn', 'pid')
if (cur[1] or '') ~= ARGV[5] or (ARGV[6] ~= '*' and (cur[2] or '') ~= ARGV[6]) then return 0 end
local fields = {}
local decoded = cjson.decode(ARGV[7])
for f, v in pairs(decoded) do
  table.insert(fields, f)
  table.insert(fields, v)
end
local node = decoded['node']
if node ~= nil then
  local was = redis.call('HGET', k, 'node')
  if was and was ~= '' and was ~= node then redis.call('SREM', P .. 'nodeagents:' .. was, name) end
  if node ~= '' then redis.call('SADD', P .. 'nodeagents:' .. node, name) end
end
redis.call('HSET', k, unpack(fields))
if ARGV[8] == '1' then
  local hb = P .. 'hb:' .. name
  if ARGV[9] ~= '' and redis.call('GET', hb) == ARGV[9] then redis.call('DEL', hb) end
  redis.call('DEL', P .. 'ctl:' .. name)
  redis.call('SADD', P .. 'agents', name)
end
return 1
