-- A node process's record and lease (`tt node run`, store/nodes.py), in one script so that two
-- processes of the same name never both hold it. ARGV[4]: op, ARGV[5]: node name, ARGV[6]: the
-- process's instance token, ARGV[7]: lease (ms), ARGV[8]: JSON fields (register only).
-- register: take the lease (refused while another instance holds it: returns that holder's
--   record as a flat list), then write the record, state ready. Returns 1 when taken.
-- beat: renew the lease if it is still this instance's (or lapsed, and the record is still this
--   instance's); 0 when another process took the name (this one must stop).
-- leave: state stopped and the lease dropped, if still this instance's.
-- drain: state draining (its agents finish their tasks and claim nothing new); 0: no such node.
local op, name, inst, ms = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local lease_key = P .. 'nodehb:' .. name
local node_key = P .. 'node:' .. name
local holder = redis.call('GET', lease_key)
if op == 'register' then
  if holder and holder ~= inst then
    return redis.call('HGETALL', node_key)
  end
  redis.call('SET', lease_key, inst, 'PX', ms)
  redis.call('SADD', P .. 'nodes', name)
  redis.call('DEL', node_key)
  local fields = cjson.decode(ARGV[8])
  for k, v in pairs(fields) do redis.call('HSET', node_key, k, v) end
  redis.call('HSET', node_key, 'instance', inst, 'state', 'ready', 'heartbeat_at', NOW)
  event('node.registered', 'node', name)
  return 1
end
if op == 'drain' then
  if redis.call('EXISTS', node_key) == 0 then return 0 end
  redis.call('HSET', node_key, 'state', 'draining', 'drained_at', NOW)
  event('node.draining', 'node', name)
  return 1
end
local mine = redis.call('HGET', node_key, 'instance') == inst
if op == 'beat' then
  if (holder == inst) or (not holder and mine) then
    redis.call('SET', lease_key, inst, 'PX', ms)
    redis.call('HSET', node_key, 'heartbeat_at', NOW)
    return 1
  end
  return 0
end
if op == 'leave' then
  if not mine then return 0 end
  if holder == inst then redis.call('DEL', lease_key) end
  redis.call('HSET', node_key, 'state', 'stopped', 'stopped_at', NOW)
  event('node.stopped', 'node', name)
  return 1
end
return redis.error_reply('node.lua: unknown op ' .. tostring(op))
