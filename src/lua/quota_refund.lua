-- Quotas: give back what a request spent, typically the images of a call
-- the upstream failed (they were not processed, so they are not billed).
-- One round trip; the core is src/lua/lib/quota_core.lua.
--
--   KEYS[i]   the state keys, as quota.lua got them
--   ARGV[1]   the clock in ms, or "" for Redis's TIME (production)
--   ARGV[2]   at: the clock the check used (quota.lua's "now")
--   ARGV[3]   requests to give back (usually 0: a request stays counted)
--   ARGV[4]   images to give back
--   ARGV[4+i] limit i's parameters, as quota.lua got them
--
-- A per-second (GCRA) debt is lowered by the amount, never below 0 (a full
-- bucket).  A window's count is lowered, never below 0, only if the window
-- the spend went to (the one holding at) is still the current one: a
-- window that has rolled over is not refunded, its successor owes nothing.
--
-- Returns { changed, now, remaining_1, reset_ms_1, ... }: how many states
-- changed, the clock used, then every limit's remaining and reset.

--@include quota_core

if redis.replicate_commands then redis.replicate_commands() end

if #ARGV ~= #KEYS + 4 then
    error('quota: ARGV must be now, at, requests, images and one limit ' ..
          'per key')
end

return quota_refund(KEYS, 0, ARGV, 4, #KEYS, q_now(ARGV[1]),
                    q_int(ARGV[2], 'at'), q_int(ARGV[3], 'requests'),
                    q_int(ARGV[4], 'images'))
