-- The current attempt failed (lib.lua's `fail_attempt`): retrying with backoff, or failed when
-- retries are exhausted or the failure is permanent. ARGV[4]: id, [5]: token, [6]: error,
-- [7]: '1' if permanent, [8]: backoff base s, [9]: backoff cap s, [10]: jitter factor
-- (0.9..1.1), [11]: default retries. Returns 'retrying', 'failed', or 'stale'. A task that fails
-- for good makes every task waiting on it upstream_failed, in this script.
return fail_attempt(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
