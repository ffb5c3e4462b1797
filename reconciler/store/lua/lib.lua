-- Shared by every task transition script (prepended by store/scripts.py).
-- ARGV[1] is the town's key prefix "tt:{TOWN}:", ARGV[2] the caller's clock (unix seconds; see
-- NOW), ARGV[3] the caller's fence: '' = unfenced (an agent's transitions are fenced by attempt
-- tokens, `tt apply` holds the apply lock), 'e:N' = written as the leader of epoch N; refused
-- before anything is written unless N is still the town's leader epoch (a deposed leader's pass).
-- Every key lives under one hash tag, so the keys built here stay on the script's slot.
local P = ARGV[1]
-- A transition's time stamp: the later of the server's clock as the script runs and the
-- caller's. Scripts run one at a time, so on one host the stamps follow the order the
-- transitions ran in: a dependent's claim is never stamped before its dependency's completion,
-- as the caller's clock alone was when the claiming process read it before a slower completer.
-- A caller whose clock is ahead of the server's is not stamped in its own past.
local function now_of(caller)
  local t = redis.call('TIME')
  local server = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  if tonumber(caller) and tonumber(caller) > tonumber(server) then return caller end
  return server
end
local NOW = now_of(ARGV[2])
local FENCE = ARGV[3] or ''
-- The town's slot migrating away from this cluster node (SETSLOT MIGRATING): a key the node
-- does not hold may be on the other one already, and the cluster refuses a script's access to it
-- mid-script, keeping the writes made before. A key that never exists is refused here, before any
-- write: the client takes it as the slot moving (`RedisUnavailable`), waits, and sends it again.
redis.call('EXISTS', P .. 'slot-probe')
if FENCE ~= '' and FENCE ~= 'e:' .. (redis.call('GET', P .. 'leader:epoch') or '0') then
  return redis.error_reply('TTFENCED ' .. FENCE .. ' is no longer the leader epoch')
end
local TERMINAL = {completed = true, failed = true, cancelled = true}

local function tkey(id) return P .. 'task:' .. id end

-- RENAME `from` to `to` (if `from` exists) in single-key commands. A cluster node importing the
-- town's slot refuses a command naming two keys when one is missing, mid-script, after the
-- writes made before: no script here names two keys in one command.
local function move(from, to)
  local v = redis.call('DUMP', from)
  if v then
    redis.call('RESTORE', to, 0, v, 'REPLACE')
    redis.call('DEL', from)
  end
end

local function event(etype, ...)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 10000, '*', 'type', etype, 'ts', NOW, ...)
end

-- A dependency in one of these makes what waits for it (run_if = success) upstream_failed; a
-- task whose dependencies are all in ENDED (or missing) may run with run_if failure / always.
local BAD = {failed = true, cancelled = true, upstream_failed = true}
local ENDED = {completed = true, failed = true, cancelled = true, upstream_failed = true,
  skipped = true}

-- Tasks that became upstream_failed in this script, by the task upstream; `announce` writes one
-- `task.upstream_failed` event per 500 of them (a failure under 10,000 dependents must not
-- flush the capped stream's history). Every script that may settle or release calls it last.
local upstream_news = {}
local function noted(root, id)
  local ids = upstream_news[root]
  if not ids then
    ids = {}
    upstream_news[root] = ids
  end
  ids[#ids + 1] = id
end

local function push_ready(id, target, priority)
  redis.call('HSET', tkey(id), 'state', 'ready', 'deps_left', 0, 'ready_at', NOW)
  redis.call('HDEL', tkey(id), 'waiting_for')  -- queued again: no longer held (see `hold`)
  local q = P .. 'queue:' .. target
  if tonumber(priority or 0) > 0 then redis.call('LPUSH', q, id) else redis.call('RPUSH', q, id) end
  event('task.ready', 'task', id, 'target', target)
end

-- The end of an attempt: its agent no longer works on `id` (unless it has moved on to another).
local function release_agent(agent, id)
  if agent and agent ~= '' and redis.call('HGET', P .. 'agent:' .. agent, 'task') == id then
    redis.call('HSET', P .. 'agent:' .. agent, 'task', '')
  end
end

local function unqueue(id, state, target)
  if state == 'ready' and target and target ~= '' then
    redis.call('LREM', P .. 'queue:' .. target, 0, id)
  end
end

-- Tasks that became skipped in this script (their `run_if`): one `task.skipped` event per 500.
local skipped_news = {}
local function noted_skip(id) skipped_news[#skipped_news + 1] = id end

local function announce()
  for root, ids in pairs(upstream_news) do
    for i = 1, #ids, 500 do
      local part = {unpack(ids, i, math.min(i + 499, #ids))}
      event('task.upstream_failed', 'upstream', root, 'count', #part, 'tasks', table.concat(part, ' '))
    end
  end
  upstream_news = {}
  for i = 1, #skipped_news, 500 do
    local part = {unpack(skipped_news, i, math.min(i + 499, #skipped_news))}
    event('task.skipped', 'count', #part, 'tasks', table.concat(part, ' '))
  end
  skipped_news = {}
end

-- Tasks whose `touches` can match a common path (`overlaps`, a JSON list of ids that
-- upsert_tasks.lua keeps symmetric) never run at once: a ready task is held back while one it
-- overlaps is running, or is ready and earlier in the file order (the earlier goes first). What
-- `overlaps_now` names. A task without `overlaps` costs nothing here.
local function overlaps_now(id, overlaps, order)
  local mine = tonumber(order or 0)
  for _, other in ipairs(cjson.decode(overlaps)) do
    local f = redis.call('HMGET', tkey(other), 'state', 'order')
    if f[1] == 'running' then return other end
    if f[1] == 'ready' then
      local theirs = tonumber(f[2] or 0)
      if theirs < mine or (theirs == mine and other < id) then return other end
    end
  end
  return nil
end

-- Hold back `id` (ready, popped from its queue by the claim that found it overlapping `other`):
-- it stays ready, out of every queue, in `held:OTHER`, with `waiting_for` saying why (tt status),
-- until `wake(other)` puts it back at its queue's front. Never lost: whatever moves `other` out
-- of running or ready wakes it (release, a retry, a hand back, a settle), and a plan counts a
-- held task as queued only while that one is running or ready (else it is requeued).
local function hold(id, other, was)
  redis.call('SADD', P .. 'held:' .. other, id)
  if was ~= other then
    redis.call('HSET', tkey(id), 'waiting_for', other)
    event('task.held', 'task', id, 'waits_for', other, 'reason', 'touches overlap')
  end
end

-- `id` left running or ready: what it held back goes back to the front of its queue (the
-- earliest in file order first), to be claimed, or held again by another.
local function wake(id)
  local held = redis.call('SMEMBERS', P .. 'held:' .. id)
  if #held == 0 then return end
  redis.call('DEL', P .. 'held:' .. id)
  local back = {}
  for _, x in ipairs(held) do
    local f = redis.call('HMGET', tkey(x), 'state', 'waiting_for', 'target', 'order')
    if f[1] == 'ready' and f[2] == id then back[#back + 1] = {x, f[3], tonumber(f[4] or 0)} end
  end
  table.sort(back, function(a, b) return a[3] > b[3] end)  -- LPUSH: the last pushed is first
  for _, b in ipairs(back) do
    redis.call('HDEL', tkey(b[1]), 'waiting_for')
    redis.call('LPUSH', P .. 'queue:' .. b[2], b[1])
    event('task.ready', 'task', b[1], 'target', b[2], 'after', id)
  end
end
