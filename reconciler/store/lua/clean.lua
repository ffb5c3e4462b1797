-- The no-op fast path of apply. KEYS[1]: meta. ARGV[4]: fingerprint of the applied files,
-- ARGV[5]: 'record' (after a pass whose plan came out empty) or 'check' (before planning), or
-- 'store' with ARGV[6], ARGV[7]: the digest the client computed of what its apply left
-- (`cleanstate.digests`: sha1, and the stand-in below), recorded as is: the check will tell.
-- Walks every task: each must exist, a ready one must sit in its queue, a blocked,
-- upstream_failed or skipped one (or an awaiting gate) must be what its dependencies and
-- run_if make it (ready.lua `readiness`: what `plan` would repair), a task awaiting approval
-- must be a gate or have `approve`; tombstones
-- (`deleted:ID`, not in the `tasks` zset) are not walked; a digest of the task definitions
-- (spec hash, target, deps) catches anything that rewrote or lost one. (A task's source
-- changes only through upsert_tasks, which clears the record; its kind only with the files,
-- which change the fingerprint.)
-- 'record' stores fingerprint + digest when all is well (else clears them); 'check' answers
-- whether both still match. Task writers (upsert, delete, requeue) clear them too.
-- The walk reads every task's fields with one SORT ... GET (in C: a third of the time of a
-- HMGET per task from Lua). Returns {1 = clean / 0, generation}.
local meta = KEYS[1]
local fp, mode = ARGV[4], ARGV[5]
local m = redis.call('HMGET', meta, 'clean', 'clean_state', 'generation')
local gen = tonumber(m[3] or 0) or 0
if mode == 'store' then
  local digest = redis.sha1hex and ARGV[6] or ARGV[7]
  redis.call('HSET', meta, 'clean', fp, 'clean_state', digest)
  return {1, gen, digest}
end
if mode == 'check' and m[1] ~= fp then return {0, gen, m[2] or ''} end

local t = P .. 'task:*->'
-- Flat: id, state, hash, target, deps, run_if, kind, approve, after for each task, in file order (false where absent).
local W = 9
local sorted, rows = pcall(redis.call, 'SORT', P .. 'tasks', 'BY', 'nosort', 'GET', '#',
  'GET', t .. 'state', 'GET', t .. 'hash', 'GET', t .. 'target', 'GET', t .. 'deps',
  'GET', t .. 'run_if', 'GET', t .. 'kind', 'GET', t .. 'approve', 'GET', t .. 'after')
if not sorted then
  -- An ACL user restricted to the town's keys may not SORT with GET (Redis 7): one HMGET each.
  rows = {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'tasks', 0, -1)) do
    local f = redis.call('HMGET', tkey(id), 'state', 'hash', 'target', 'deps', 'run_if', 'kind',
      'approve', 'after')
    local n = #rows
    rows[n + 1], rows[n + 2], rows[n + 3], rows[n + 4], rows[n + 5] = id, f[1], f[2], f[3], f[4]
    rows[n + 6], rows[n + 7], rows[n + 8], rows[n + 9] = f[5], f[6], f[7], f[8]
  end
end
local states, targets = {}, {}
for i = 1, #rows, W do
  local state = rows[i + 1]
  states[rows[i]] = state
  if state == 'ready' then targets[rows[i + 3] or ''] = true end
end
local queued = {}
for target in pairs(targets) do
  for _, id in ipairs(redis.call('LRANGE', P .. 'queue:' .. target, 0, -1)) do queued[id] = true end
end
-- A ready task out of its queue may be held back by an overlap of `touches` (lib.lua `hold`):
-- as good as queued while the task it waits for is running or ready (that one wakes it).
local function held(id)
  local other = redis.call('HGET', tkey(id), 'waiting_for')
  return other and (states[other] == 'running' or states[other] == 'ready')
end
local ok = true
local parts, n = {}, 0
for i = 1, #rows, W do
  local id, state, deps = rows[i], rows[i + 1], rows[i + 4]
  if not state or (state == 'ready' and not queued[id] and not held(id)) then
    ok = false
    break
  end
  local kind = rows[i + 6] or 'work'
  local waiting = state == 'blocked' or state == 'upstream_failed' or state == 'skipped'
  if waiting or (state == 'awaiting_approval' and kind == 'gate') then
    local list = {}
    if deps then  -- a JSON array of ids (which never hold a quote): no decoding needed
      for d in string.gmatch(deps, '"([^"]*)"') do list[#list + 1] = d end
    end
    local should = readiness(list, rows[i + 5] or nil, function(d) return states[d] end,
      kind == 'group', rows[i + 8] or nil)
    if should == 'ready' and kind == 'gate' then should = 'awaiting_approval' end
    if should ~= state then
      ok = false
      break
    end
  elseif state == 'awaiting_approval' and (kind ~= 'work' or rows[i + 7] ~= '1') then
    ok = false  -- a group or backlog task, or a work task no longer asking for approval
    break
  end
  -- id|hash|target|deps per line, joined once at the end (no intermediate strings)
  parts[n + 1], parts[n + 2], parts[n + 3] = id, '|', rows[i + 2] or ''
  parts[n + 4], parts[n + 5], parts[n + 6] = '|', rows[i + 3] or '', '|'
  parts[n + 7], parts[n + 8] = deps or '', '\n'
  n = n + 8
end
-- (fakeredis, for unit tests, has no sha1hex: its stand-in only tells sizes apart)
local sha1hex = redis.sha1hex or function(text) return 'size:' .. #text end
local digest = ok and sha1hex(table.concat(parts)) or ''
if mode == 'record' then
  if ok and (m[1] ~= fp or m[2] ~= digest) then
    redis.call('HSET', meta, 'clean', fp, 'clean_state', digest)
  elseif not ok then
    redis.call('HDEL', meta, 'clean', 'clean_state')
  end
  return {ok and 1 or 0, gen, ok and digest or ''}
end
return {(ok and digest == m[2]) and 1 or 0, gen, m[2] or ''}
