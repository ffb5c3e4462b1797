-- Shared by every task transition script (prepended by store/scripts.py).
-- ARGV[1] is the town's key prefix "tt:{TOWN}:", ARGV[2] the caller's clock (unix seconds),
-- ARGV[3] the caller's fence: '' = unfenced (an agent's transitions are fenced by attempt tokens,
-- `tt apply` holds the apply lock), 'e:N' = written as the leader of epoch N; refused before
-- anything is written unless N is still the town's leader epoch (a deposed leader's pass).
-- Every key lives under one hash tag, so the keys built here stay on the script's slot.
local P = ARGV[1]
local NOW = ARGV[2]
local FENCE = ARGV[3] or ''
if FENCE ~= '' and FENCE ~= 'e:' .. (redis.call('GET', P .. 'leader:epoch') or '0') then
  return redis.error_reply('TTFENCED ' .. FENCE .. ' is no longer the leader epoch')
end
local TERMINAL = {completed = true, failed = true, cancelled = true}

local function tkey(id) return P .. 'task:' .. id end

local function event(etype, ...)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 10000, '*', 'type', etype, 'ts', NOW, ...)
end

-- What a task's dependencies leave it waiting for: how many are not completed (a recount, not a
-- counter, so re-runs and repeated completions never release a dependent twice), and the task
-- upstream that failed or was cancelled, if one did: the first such dependency, or the one its
-- own `upstream` names. Such a task can never run as things stand: it is `upstream_failed`.
-- A dependency that does not exist (pruned: a tombstone, or gone) counts the same, naming it:
-- a task of the CLI waiting for it would otherwise wait forever.
local BAD = {failed = true, cancelled = true, upstream_failed = true}
local function upstream(deps_json)
  local left, root = 0, nil
  if deps_json and deps_json ~= '' then
    for _, d in ipairs(cjson.decode(deps_json)) do
      local f = redis.call('HMGET', tkey(d), 'state', 'upstream')
      if f[1] ~= 'completed' then left = left + 1 end
      if not root and (not f[1] or BAD[f[1]]) then
        root = (f[1] == 'upstream_failed' and f[2]) or d
      end
    end
  end
  return left, root
end

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

local function announce()
  for root, ids in pairs(upstream_news) do
    for i = 1, #ids, 500 do
      local part = {unpack(ids, i, math.min(i + 499, #ids))}
      event('task.upstream_failed', 'upstream', root, 'count', #part, 'tasks', table.concat(part, ' '))
    end
  end
  upstream_news = {}
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

-- `id` changed state: settle again every dependent that waits (blocked or upstream_failed), and
-- theirs in turn wherever one changed. A dependent is upstream_failed while a task upstream
-- failed or was cancelled, blocked while a dependency is not completed, and else ready (a
-- group: completed). Mirrored by plan/diff.py (`_release`).
local function release(id)
  wake(id)
  local stack = {id}
  while #stack > 0 do
    local cur = table.remove(stack)
    for _, kid in ipairs(redis.call('SMEMBERS', P .. 'children:' .. cur)) do
      local k = tkey(kid)
      local f = redis.call('HMGET', k, 'state', 'deps', 'kind', 'target', 'priority', 'upstream')
      local was = f[1]
      if was == 'blocked' or was == 'upstream_failed' then
        local left, root = upstream(f[2])
        if root then
          if was ~= 'upstream_failed' or f[6] ~= root then
            redis.call('HSET', k, 'state', 'upstream_failed', 'deps_left', left, 'upstream', root)
            if was ~= 'upstream_failed' then noted(root, kid) end
            table.insert(stack, kid)
          end
        else
          if was == 'upstream_failed' then
            redis.call('HDEL', k, 'upstream')
            table.insert(stack, kid)
          end
          if left > 0 then
            redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
          elseif f[3] == 'group' then
            redis.call('HSET', k, 'state', 'completed', 'deps_left', 0, 'finished_at', NOW)
            event('task.completed', 'task', kid, 'reason', 'group')
            table.insert(stack, kid)
          else
            push_ready(kid, f[4], f[5])
          end
        end
      end
    end
  end
end

-- Mark `id` completed and release its dependents, cascading through groups, in this script.
local function complete(id, result, reason)
  redis.call('HSET', tkey(id), 'state', 'completed', 'finished_at', NOW, 'token', '')
  redis.call('HDEL', tkey(id), 'upstream')
  if result then redis.call('HSET', tkey(id), 'result', result) end
  event('task.completed', 'task', id, 'reason', reason or '')
  release(id)
end

-- Decide upstream_failed / blocked / ready / completed (groups) for a task whose deps may have
-- changed; entering or leaving upstream_failed releases its dependents too.
local function settle(id)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'deps', 'kind', 'target', 'priority', 'state', 'upstream')
  local left, root = upstream(f[1])
  if root then
    redis.call('HSET', k, 'state', 'upstream_failed', 'deps_left', left, 'upstream', root)
    if f[5] ~= 'upstream_failed' then noted(root, id) end
    if f[5] ~= 'upstream_failed' or f[6] ~= root then release(id) end
    return
  end
  if f[5] == 'upstream_failed' then redis.call('HDEL', k, 'upstream') end
  if left > 0 then
    redis.call('HSET', k, 'state', 'blocked', 'deps_left', left)
  elseif f[2] == 'group' then
    complete(id, nil, 'group')
    return
  else
    push_ready(id, f[3], f[4])
  end
  if f[5] == 'upstream_failed' then release(id) end
end

-- Append a record of an attempt of `id` to its history (JSON). Its times are written as they came
-- (NOW strings, full precision): cjson keeps 14 digits (0.1 ms), which would put an attempt's
-- start before the completion that released it in the same script.
-- `detail`: a JSON object (the attempt's ledger entry: exit class, session, tokens, cost…) whose
-- keys are added to the record, never over the ones written here.
local function with_detail(fields, detail)
  if not detail or detail == '' then return fields end
  local ok, extra = pcall(cjson.decode, detail)
  if ok and type(extra) == 'table' then
    for key, value in pairs(extra) do
      if fields[key] == nil and key ~= 'started_at' and key ~= 'finished_at' then
        fields[key] = value
      end
    end
  end
  return fields
end

local function record_attempt(id, fields, started_at, detail)
  local body = cjson.encode(with_detail(fields, detail)):sub(1, -2)
  if started_at and string.match(started_at, '^%d+%.?%d*$') then
    body = body .. ',"started_at":' .. started_at
  end
  redis.call('RPUSH', P .. 'attempts:' .. id, body .. ',"finished_at":' .. NOW .. '}')
end

-- JSON [[id, agent, result], ...] of the tasks `deps_json` names (groups do no work: left out).
local function dep_results(deps_json)
  local out = {}
  if deps_json and deps_json ~= '' then
    for _, d in ipairs(cjson.decode(deps_json)) do
      local f = redis.call('HMGET', tkey(d), 'result', 'assignee', 'kind')
      if f[3] ~= 'group' then table.insert(out, {d, f[2] or '', f[1] or ''}) end
    end
  end
  if #out == 0 then return '[]' end
  return cjson.encode(out)
end

-- An agent claims `id`: ready → running with a fresh attempt token. Returns {attempt, spec,
-- previous error, results of its dependencies} (all the prompt needs), or nil when the task is no
-- longer ready (cancelled, deleted or already taken: a stale queue entry is dropped), or held
-- back by a task whose `touches` overlap its own (`hold`). The same token again (a retry after
-- the connection dropped before the reply) gets the same claim back.
local function claim(id, agent, token)
  local k = tkey(id)
  local cur = redis.call('HMGET', k, 'state', 'token', 'attempt', 'spec', 'error', 'deps',
    'overlaps', 'order', 'waiting_for')
  if cur[1] == 'running' and cur[2] == token and token ~= '' then
    return {cur[3], cur[4], cur[5], dep_results(cur[6])}
  end
  if cur[1] ~= 'ready' then return nil end
  if cur[7] then
    local other = overlaps_now(id, cur[7], cur[8])
    if other then
      hold(id, other, cur[9])
      return nil
    end
    if cur[9] then redis.call('HDEL', k, 'waiting_for') end
  end
  local attempt = redis.call('HINCRBY', k, 'attempt', 1)
  redis.call('HSET', k, 'state', 'running', 'token', token, 'assignee', agent, 'started_at', NOW)
  redis.call('HDEL', k, 'finished_at', 'next_attempt_at')
  redis.call('HSET', P .. 'agent:' .. agent, 'task', id, 'state', 'working')
  event('task.claimed', 'task', id, 'agent', agent, 'attempt', attempt)
  return {attempt, cur[4], cur[5], dep_results(cur[6])}
end

-- A suspended town (`tt suspend`, the `suspended` key) claims nothing: a ready task an agent
-- popped is parked (`parked`, in the order taken) until the town is resumed (`suspend.lua`), which
-- puts it back at the head of its queue, waking the agents idle there.
local function suspended() return redis.call('EXISTS', P .. 'suspended') == 1 end

local function park(id)
  if redis.call('HGET', tkey(id), 'state') == 'ready' then redis.call('RPUSH', P .. 'parked', id) end
end

-- The ledger entry of an attempt completed before its process exited (`tt task complete`, run by
-- the model): added to its record, the task's last, when that is still the current attempt's
-- and has none yet.
local function ledger_late(id, current, detail)
  local key = P .. 'attempts:' .. id
  local last = redis.call('LINDEX', key, -1)
  if not last then return end
  local rec, added = cjson.decode(last), with_detail({}, detail)
  local now = tostring(current)
  if rec.exit_class or rec.outcome ~= 'completed' or tostring(rec.attempt) ~= now
    or tostring(added.attempt) ~= now or rec.agent ~= added.agent then return end
  for k in pairs(rec) do added[k] = nil end
  -- Spliced in, so its times stay as they were written (full precision).
  local body = last:sub(1, -2) .. ',' .. cjson.encode(added):sub(2)
  if next(added) then redis.call('LSET', key, -1, body) end
end

-- The attempt `token` of `id` finished well: completed, result kept, dependents released.
-- Returns 1, or 0 for a stale attempt (rejected).
local function complete_attempt(id, token, result, detail)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'state')
  if not f[5] or f[1] ~= token or token == '' then
    event('task.stale', 'task', id, 'outcome', 'completed', 'token', token)
    ledger_late(id, f[2], detail)
    return 0
  end
  record_attempt(id, {attempt = tonumber(f[2]), agent = f[3], outcome = 'completed'}, f[4],
    detail)
  redis.call('HSET', k, 'error', '')
  complete(id, result, 'attempt ' .. f[2])
  release_agent(f[3], id)
  announce()
  return 1
end

-- The attempt `token` of `id` failed: retrying with backoff (base, cap seconds, jitter factor),
-- or failed when its retries (else `default_retries`) are used up or the failure is permanent
-- ('1'); a task that fails for good makes every task waiting on it upstream_failed. Returns
-- 'retrying', 'failed', or 'stale' (rejected: not the current attempt).
local function fail_attempt(id, token, err, permanent, base, cap, jitter, default_retries,
    detail)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'token', 'attempt', 'assignee', 'started_at', 'run_base',
    'retries')
  if f[1] ~= token or token == '' then
    event('task.stale', 'task', id, 'outcome', 'failed', 'token', token)
    return 'stale'
  end
  local attempt = tonumber(f[2])
  record_attempt(id, {attempt = attempt, agent = f[3], outcome = 'failed', error = err}, f[4],
    detail)
  release_agent(f[3], id)
  local retries = tonumber(f[6])
  if not retries or retries < 0 then retries = tonumber(default_retries) end
  local used = attempt - tonumber(f[5] or 0)
  if permanent == '1' or used > retries then
    redis.call('HSET', k, 'state', 'failed', 'error', err, 'finished_at', NOW, 'token', '')
    event('task.failed', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
      'permanent', permanent)
    release(id)  -- its dependents, and theirs, become upstream_failed (naming it)
    announce()
    return 'failed'
  end
  local delay = math.min(tonumber(base) * 2 ^ (used - 1), tonumber(cap)) * tonumber(jitter)
  local at = tonumber(NOW) + delay
  redis.call('HSET', k, 'state', 'retrying', 'error', err, 'next_attempt_at', at, 'token', '')
  redis.call('ZADD', P .. 'timers', at, id)
  wake(id)
  event('task.retrying', 'task', id, 'agent', f[3] or '', 'attempt', attempt, 'error', err,
    'next_attempt_at', at)
  return 'retrying'
end

-- Timers that are due: retrying tasks whose backoff elapsed go back to their queue (idempotent;
-- any process may run it). Returns the count.
local function promote_due()
  local due = redis.call('ZRANGEBYSCORE', P .. 'timers', '-inf', NOW)
  local n = 0
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'timers', id)
    if redis.call('HGET', tkey(id), 'state') == 'retrying' then
      settle(id)
      n = n + 1
    end
  end
  announce()
  return n
end

-- Every message of agent `a`'s mailboxes, urgent first, moves to `seen` (capped at `seen_max`)
-- and, with `keep`, to its `answering` list, so a message is never held only in a process's
-- memory. Returns the whole `answering` list with `keep` (also what a previous process of the
-- agent took and died before answering), else what it took.
local function take_mail(a, seen_max, keep)
  local answering, seen = P .. 'answering:' .. a, P .. 'seen:' .. a
  local taken = {}
  for _, box in ipairs({{P .. 'urgent:' .. a, 'urgent'}, {P .. 'inbox:' .. a, 'normal'}}) do
    local msgs = redis.call('LRANGE', box[1], 0, -1)
    for _, m in ipairs(msgs) do
      if keep then redis.call('RPUSH', answering, m) end
      redis.call('RPUSH', seen, m)
      taken[#taken + 1] = m
    end
    if #msgs > 0 then
      redis.call('DEL', box[1])
      redis.call('LTRIM', seen, -tonumber(seen_max), -1)
      event('message.read', 'agent', a, 'count', #msgs, 'first', box[2])
    end
  end
  redis.call('DEL', P .. 'bell:' .. a)  -- all of it is taken: nothing left to wake for
  if not keep then return taken end
  return redis.call('LRANGE', answering, 0, -1)
end
