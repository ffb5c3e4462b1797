-- An idle agent woken by its bell takes its mail: every message of its mailboxes, urgent first,
-- moves to its `answering` list (and is kept in `seen`) in this one script, so a message is never
-- held only in a process's memory. ARGV[4]: agent, ARGV[5]: how many `seen` keeps, ARGV[6]: '1'
-- to keep them in `answering` until answered (an agent), '0' when read by a person (`tt inbox`).
-- Returns the whole `answering` list: also what a previous process of the agent took and died
-- before answering (the answer removes them: store.mail.answer_mail); with '0', what it took.
local a, keep = ARGV[4], ARGV[6] == '1'
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
    redis.call('LTRIM', seen, -tonumber(ARGV[5]), -1)
    event('message.read', 'agent', a, 'count', #msgs, 'first', box[2])
  end
end
redis.call('DEL', P .. 'bell:' .. a)  -- all of it is taken: nothing left to wake for
if not keep then return taken end
return redis.call('LRANGE', answering, 0, -1)
