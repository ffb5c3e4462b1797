-- Timers that are due: retrying tasks whose backoff elapsed go back to their queue (lib.lua's
-- `promote_due`). Any process may run it (controller pass, idle agents). Returns the count.
return promote_due()
