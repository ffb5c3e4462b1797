-- The current attempt finished well (lib.lua's `complete_attempt`): completed, result kept,
-- dependents released in this script. ARGV[4]: id, ARGV[5]: token, ARGV[6]: result.
-- Returns 1, or 0 for a stale attempt (rejected).
return complete_attempt(ARGV[4], ARGV[5], ARGV[6])
