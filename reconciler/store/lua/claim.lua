-- An agent claims a task it popped from a queue (lib.lua's `claim`). ARGV[4]: id, ARGV[5]: agent,
-- ARGV[6]: token. Returns {attempt, spec, previous error, results of its dependencies} or false
-- when the task is no longer ready (a stale queue entry is dropped).
return claim(ARGV[4], ARGV[5], ARGV[6]) or false
