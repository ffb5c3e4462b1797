-- An idle agent woken by its bell takes its mail: every message of its mailboxes, urgent first,
-- moves to its `answering` list (and is kept in `seen`) in this one script, so a message is never
-- held only in a process's memory. ARGV[4]: agent, ARGV[5]: how many `seen` keeps.
-- Returns the whole `answering` list: also what a previous process of the agent took and died
-- before answering (the answer removes them: taskstore.answer_mail).
local a = ARGV[4]
local answering, seen = P .. 'answering:' .. a, P .. 'seen:' .. a
for _, box in ipairs({{P .. 'urgent:' .. a, 'urgent'}, {P .. 'inbox:' .. a, 'normal'}}) do
  local msgs = redis.call('LRANGE', box[1], 0, -1)
  for _, m in ipairs(msgs) do
    redis.call('RPUSH', answering, m)
    redis.call('RPUSH', seen, m)
  end
  if #msgs > 0 then
    redis.call('DEL', box[1])
    redis.call('LTRIM', seen, -tonumber(ARGV[5]), -1)
    event('message.read', 'agent', a, 'count', #msgs, 'first', box[2])
  end
end
redis.call('DEL', P .. 'bell:' .. a)  -- all of it is taken: nothing left to wake for
return redis.call('LRANGE', answering, 0, -1)
