-- Execute the task records of a plan, in plan order; the whole batch is one atomic script.
-- ARGV[4]: apply generation; ARGV[5]: the batch's place in its apply, 'TOKEN:N' ('' for a call
-- on its own, see `chain` below); ARGV[6]: JSON array of records, then their specs (a record's
-- `spec` is k: its spec is ARGV[6 + k], not escaped inside the records' JSON), by `mode`:
--   upsert  {id, spec, hash, target, order, directive, and where not the default: deps[],
--            kind ('work'), source ('file'), priority (0), retries (the town's), run_if,
--            approve, after (`graph.Node.after`)}: create, or
--            rewrite the spec; a new / blocked / ready task is settled
--   rerun   (same fields): back to blocked or ready with a fresh retry budget; what waited for
--           it as upstream_failed waits again; `by` (`tt retry`, a person's re-run that no file
--           asked for) is kept as `rerun_by` until the files re-run or change the task (drift)
--   complete {id}: marked done in the file (releases dependents); cancel {id}: cancelled
--   restore {id, hash, target, order, deps[], after}: a tombstone back as the task it was (`restore`)
-- An upsert, rerun or restore record may add overlaps[]: the tasks whose `touches` can match a
-- path the task's can (lib.lua `overlaps_now`), kept symmetric here (`set_overlaps`).
-- Returns the number of records executed.
--
-- Cost matters here (10,000 tasks in one apply): a task hash holds only what differs from the
-- defaults (readers treat a missing field as its default), the file order is one ZADD per
-- batch, and creation is told by one `tasks.created` event per batch, not one per task (which
-- would also flush the capped stream's history).
local gen = ARGV[4]
-- Batch N of an apply runs only after its batch N-1 ran whole: an apply sends a batch while the
-- one before it still runs (`TaskOps.upsert_batches`), and when that one failed (a script's
-- writes before an error are kept) this one writes nothing: what it creates may wait for tasks
-- the failed batch did not write. Checked before any write; the last batch run is recorded last.
local chain = ARGV[5]
if chain ~= '' then
  local token, n = string.match(chain, '^(.*):(%d+)$')
  if tonumber(n) > 0 and redis.call('HGET', KEYS[1], 'upsert_chain') ~= token .. ':' .. (n - 1) then
    return redis.error_reply('TTCHAIN the batch before ' .. chain .. ' did not run whole')
  end
end
-- Costs are counted (`spent`) and budgets told (`exhausted`) by other scripts only: a town that
-- has neither hash now has none at the end of this one, and a new task has nothing to clear.
local budgets_kept = redis.call('EXISTS', P .. 'spent')
  + redis.call('EXISTS', P .. 'exhausted') > 0
local recs = cjson.decode(ARGV[6])
for _, r in ipairs(recs) do
  if r.spec then r.spec = ARGV[6 + r.spec] end
end
redis.call('HDEL', KEYS[1], 'clean', 'clean_state')  -- the no-op fast path must look again
local order_args = {}
local created, ready = {}, 0
-- The state of each task this script created, while no cascade (complete, settle, cancel) has
-- run since: a dependency created earlier in the batch is not read back from Redis.
local fresh, made = {}, {}
local function cascaded() fresh = {} end
local function state_of(id)
  local s = fresh[id]
  if s == nil then s = redis.call('HGET', tkey(id), 'state') end
  return s
end

local function place(r)  -- the file order, written in one ZADD per 1,000 tasks
  order_args[#order_args + 1] = r.order
  order_args[#order_args + 1] = r.id
  if #order_args >= 2000 then
    redis.call('ZADD', P .. 'tasks', unpack(order_args))
    order_args = {}
  end
end

local function deps_json_of(r)
  if r.deps and #r.deps > 0 then return cjson.encode(r.deps) end
  return nil
end

local function add(fields, name, value)  -- (no closure made per task: 10,000 in an apply)
  local n = #fields
  fields[n + 1] = name
  fields[n + 2] = value
end

-- A new task: its spec, first state and creation fields in one HSET.
local function write_new(r, state, left)
  local fields = {'spec', r.spec, 'hash', r.hash, 'target', r.target, 'order', r.order,
    'state', state, 'deps_left', left, 'created_at', NOW}
  local deps_json = deps_json_of(r)
  if deps_json then add(fields, 'deps', deps_json) end
  if r.kind then add(fields, 'kind', r.kind) end
  if r.source then add(fields, 'source', r.source) end
  if r.priority then add(fields, 'priority', r.priority) end
  if r.retries then add(fields, 'retries', r.retries) end
  if r.run_if then add(fields, 'run_if', r.run_if) end
  if r.approve then add(fields, 'approve', '1') end
  if r.after then add(fields, 'after', r.after) end
  if state == 'ready' then add(fields, 'ready_at', NOW) end
  redis.call('HSET', tkey(r.id), unpack(fields))
  -- An id used before (its tombstone purged) starts at attempt 1 again: the cost counted under
  -- it, and the last attempt counted, are the old task's, not this one's.
  if budgets_kept then
    redis.call('HDEL', P .. 'spent', 'counted:' .. r.id, 'task:' .. r.id)
    redis.call('HDEL', P .. 'exhausted', 'task:' .. r.id)
  end
  fresh[r.id] = state
  made[r.id] = true
  place(r)
  if r.deps then
    for _, d in ipairs(r.deps) do redis.call('SADD', P .. 'children:' .. d, r.id) end
  end
  created[#created + 1] = r.id
end

-- An existing task's new spec: every definition field written (a default one explicitly, as it
-- may replace another value); its state is left to the caller.
local function rewrite(r, old_deps)
  local k = tkey(r.id)
  if old_deps and old_deps ~= '' then
    for _, d in ipairs(cjson.decode(old_deps)) do redis.call('SREM', P .. 'children:' .. d, r.id) end
  end
  redis.call('HSET', k, 'spec', r.spec, 'hash', r.hash, 'target', r.target, 'order', r.order,
    'deps', deps_json_of(r) or '[]', 'kind', r.kind or 'work', 'source', r.source or 'file',
    'priority', r.priority or 0)
  redis.call('HDEL', k, 'rerun_by')  -- the files speak for the task again (see `rerun`)
  if r.retries then redis.call('HSET', k, 'retries', r.retries) else redis.call('HDEL', k, 'retries') end
  if r.run_if then redis.call('HSET', k, 'run_if', r.run_if) else redis.call('HDEL', k, 'run_if') end
  if r.approve then redis.call('HSET', k, 'approve', '1') else redis.call('HDEL', k, 'approve') end
  if r.after then redis.call('HSET', k, 'after', r.after) else redis.call('HDEL', k, 'after') end
  place(r)
  if r.deps then
    for _, d in ipairs(r.deps) do redis.call('SADD', P .. 'children:' .. d, r.id) end
  end
end

-- A new pending task is upstream_failed (a dependency failed or was cancelled), skipped (its
-- run_if), blocked, ready (and queued), completed (a group with nothing left to wait for) or
-- awaiting approval (such a gate): ready.lua `readiness`.
local function create(r)
  local now, left, root = readiness(r.deps or {}, r.run_if, state_of, r.kind == 'group', r.after)
  if now == 'upstream_failed' or now == 'skipped' then
    write_new(r, now, left)
    if root then
      redis.call('HSET', tkey(r.id), 'upstream', root)
      noted(root, r.id)
    else
      redis.call('HSET', tkey(r.id), 'finished_at', NOW)
      noted_skip(r.id)
    end
    release(r.id)  -- a task of the CLI may already wait for this id
    cascaded()
  elseif now == 'blocked' or r.kind == 'group' or r.kind == 'gate' then
    write_new(r, 'blocked', left)
    if now ~= 'blocked' then
      if r.kind == 'group' then complete(r.id, nil, 'group') else await_approval(r.id, nil, 'gate') end
      cascaded()
    end
  else
    write_new(r, 'ready', left)
    local q = P .. 'queue:' .. r.target
    if tonumber(r.priority or 0) > 0 then redis.call('LPUSH', q, r.id) else redis.call('RPUSH', q, r.id) end
    ready = ready + 1
  end
end

-- A ready task whose queue, priority and readiness did not change keeps its place in its queue
-- (an edited description must not send it to the back of the line).
local function keeps_place(r, state, old_target, old_priority)
  if state ~= 'ready' or old_target ~= r.target
    or tonumber(old_priority or 0) ~= tonumber(r.priority or 0) then
    return false
  end
  if readiness(r.deps or {}, r.run_if, nil, false, r.after) ~= 'ready' then return false end
  return redis.call('LPOS', P .. 'queue:' .. r.target, r.id) ~= false
end

-- (a skipped task is left skipped: it does not run anyway, and a cancelled one would make what
-- waits for it upstream_failed: a run that went as planned would end as failed)
local function cancel(id, state, target, reason)
  if state and not TERMINAL[state] and state ~= 'skipped' then
    unqueue(id, state, target)
    redis.call('HSET', tkey(id), 'state', 'cancelled', 'finished_at', NOW, 'token', '')
    redis.call('HDEL', tkey(id), 'upstream')
    redis.call('ZREM', P .. 'timers', id)
    event('task.cancelled', 'task', id, 'reason', reason)
    release(id)  -- what waits for it is upstream_failed now
  end
end

-- A task pruned earlier whose id is in the files again: its tombstone (`deleted:ID`, with its
-- attempts) becomes its record again, as it was (state, attempts, result), at its new place in
-- the file order; one that had not finished is settled again (a running one was handed back
-- when it was pruned), except one awaiting approval: its work is done and waits for a person. What waits for it is settled again too. Nothing is re-run: a changed
-- spec comes as the records after this one (update, rerun), as for any existing task.
local function restore(r)
  local k, tomb = tkey(r.id), P .. 'deleted:' .. r.id
  if redis.call('EXISTS', k) == 1 or redis.call('EXISTS', tomb) == 0 then return end
  move(tomb, k)
  move(P .. 'deleted-attempts:' .. r.id, P .. 'attempts:' .. r.id)
  redis.call('ZREM', P .. 'deleted', r.id)
  redis.call('HDEL', k, 'deleted_at')
  made[r.id] = true  -- the records after this one of the batch find it as an existing task
  redis.call('HSET', k, 'order', r.order, 'deps', deps_json_of(r) or '[]')
  if r.after then redis.call('HSET', k, 'after', r.after) else redis.call('HDEL', k, 'after') end
  place(r)
  if r.deps then
    for _, d in ipairs(r.deps) do redis.call('SADD', P .. 'children:' .. d, r.id) end
  end
  local state = redis.call('HGET', k, 'state')
  event('task.restored', 'task', r.id, 'state', state or '')
  if not TERMINAL[state] and state ~= 'awaiting_approval' then
    redis.call('HDEL', k, 'next_attempt_at')
    settle(r.id)
  end
  release(r.id)
  cascaded()
end

-- Another task's `overlaps` gains or loses `id` (a task that does not exist is left alone: its
-- own record, when it comes, holds the whole list).
local function patch_overlaps(other, id, add)
  local k = tkey(other)
  local f = redis.call('HMGET', k, 'state', 'overlaps')
  if not f[1] then return end
  -- (ids never hold a quote: a plain find tells, and most patches of an apply change nothing)
  local has = f[2] and string.find(f[2], '"' .. id .. '"', 1, true) ~= nil or false
  if has == add then return end
  local list = {}
  if f[2] then
    for _, x in ipairs(cjson.decode(f[2])) do
      if x ~= id then list[#list + 1] = x end
    end
  end
  if add then list[#list + 1] = id end
  if #list > 0 then
    redis.call('HSET', k, 'overlaps', cjson.encode(list))
  else
    redis.call('HDEL', k, 'overlaps')
  end
end

-- The task's `overlaps` become `ids` (computed by the plan from every task's `touches`), and
-- each task gained or lost says so too: the relation stays symmetric though the plan rewrites
-- only the tasks whose definition changed.
local function set_overlaps(id, ids)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'state', 'overlaps')
  if not f[1] then return end
  local was, now = {}, {}
  if f[2] then
    for _, x in ipairs(cjson.decode(f[2])) do was[x] = true end
  end
  for _, x in ipairs(ids) do now[x] = true end
  if #ids > 0 then
    redis.call('HSET', k, 'overlaps', cjson.encode(ids))
  elseif f[2] then
    redis.call('HDEL', k, 'overlaps')
  end
  for x in pairs(was) do
    if not now[x] then patch_overlaps(x, id, false) end
  end
  for x in pairs(now) do
    if not was[x] then patch_overlaps(x, id, true) end
  end
end

-- Which tasks exist, in one call: a new task's hash is not read.
local known = {}
if #recs > 0 then
  local ids = {}
  for i, r in ipairs(recs) do ids[i] = r.id end
  known = redis.call('ZMSCORE', P .. 'tasks', unpack(ids))
end

for i, r in ipairs(recs) do
  local k = tkey(r.id)
  local old = {}
  if known[i] or made[r.id] then
    old = redis.call('HMGET', k, 'state', 'target', 'deps', 'priority', 'kind')
  end
  local state, old_target, old_deps = old[1], old[2], old[3]
  if r.mode == 'restore' then
    restore(r)
  elseif r.mode == 'complete' then
    if state and state ~= 'completed' then
      unqueue(r.id, state, old_target)
      redis.call('ZREM', P .. 'timers', r.id)
      complete(r.id, nil, 'marked done in file')
      cascaded()
    end
  elseif r.mode == 'cancel' then
    cancel(r.id, state, old_target, 'cancelled in file')
    cascaded()
  elseif r.mode == 'rerun' then
    rewrite(r, old_deps)
    unqueue(r.id, state, old_target)
    redis.call('HSET', k, 'run_base', redis.call('HGET', k, 'attempt') or 0, 'token', '',
      'error', '', 'next_attempt_at', '')
    if r.by then redis.call('HSET', k, 'rerun_by', r.by) end
    -- A re-run makes a new work product: the old one's commit and stage are history.
    redis.call('HDEL', k, 'finished_at', 'git_stage', 'git_head', 'git_candidate', 'git_onto',
      'git_note', 'git_conflicts', 'git_result', 'git_manual',
      'git_told', 'git_merged', 'git_changed', 'git_outside', 'git_base', 'git_reopen_from',
      'approved', 'approval_merge', 'awaiting_since')
    redis.call('ZREM', P .. 'timers', r.id)
    event('task.rerun', 'task', r.id)
    settle(r.id)
    release(r.id)  -- what waited for it as failed or cancelled waits again
    cascaded()
  elseif not state then
    if r.directive == 'done' then
      write_new(r, 'blocked', 0)
      complete(r.id, nil, 'marked done in file')
      cascaded()
    elseif r.directive == 'cancelled' then
      write_new(r, 'cancelled', 0)
      redis.call('HSET', k, 'finished_at', NOW)
      event('task.cancelled', 'task', r.id, 'reason', 'cancelled in file')
      release(r.id)
      cascaded()
    else
      create(r)
    end
  else
    rewrite(r, old_deps)
    if (state == 'blocked' or state == 'ready' or state == 'upstream_failed' or state == 'skipped')
      and r.directive == 'pending' then
      if not keeps_place(r, state, old_target, old[4]) then
        unqueue(r.id, state, old_target)
        settle(r.id)
        wake(r.id)  -- it may have left ready
        cascaded()
      end
    elseif state == 'awaiting_approval' and r.directive == 'pending' then
      -- its approve, kind or dependencies may have changed: a gate given an agent runs
      recheck_awaiting(r.id, old[5] ~= 'gate')
      cascaded()
    end
  end
  if r.overlaps then set_overlaps(r.id, r.overlaps) end
end
if #order_args > 0 then redis.call('ZADD', P .. 'tasks', unpack(order_args)) end
announce()
if #created > 0 then
  event('tasks.created', 'count', #created, 'ready', ready, 'generation', gen,
    'tasks', table.concat(created, ' '))
end
if chain ~= '' then redis.call('HSET', KEYS[1], 'upsert_chain', chain) end
return #recs
