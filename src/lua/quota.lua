-- Quotas: check every limit that applies to a request and spend on all of
-- them, or on none, in one round trip.  The arithmetic is the one of
-- src/smarty_quota.c (GCRA for per-second limits, fixed windows aligned to
-- the clock for minutes, hours and days; the reasons are in its header and
-- in docs/quota.md), so the local fallback and Redis decide alike.
--
--   KEYS[i]   the state key of limit i, one per limit of the space's set
--             and of the client's set (smarty_quota_key):
--               <prefix>{s<space>}:q:s:<unit><window>           the space
--               <prefix>{s<space>}:q:c:<client>:<unit><window>  a client
--             e.g. smarty:{s1}:q:s:rs, smarty:{s1}:q:c:frontdesk:id; the
--             hash tag puts every key of a request in one Cluster slot.
--             A key holds "t:v" (smarty_quota_state_t) as a string, with a
--             PX that ends 60 s after the state stops mattering.
--   ARGV[1]   the clock in ms since the epoch, or "" for Redis's own TIME.
--             Production sends "": every gateway instance then decides on
--             one clock, whatever their own clocks say.  An explicit clock
--             is for tests (t/70-quota-script.t replays the same sequence
--             through the C core and here) and for tools.
--   ARGV[2]   requests to spend (1; 0 to only read the state)
--   ARGV[3]   images to spend (the request's image count)
--   ARGV[3+i] limit i's parameters, "<unit><window>:<count>:<burst>", e.g.
--             "rs:10:20", "im:1000:1000" (smarty_quota_limit_arg)
--
-- Returns { refused, retry_ms, now, remaining_1, reset_ms_1, ... }:
--   refused   0 when admitted (spent on every limit), else the index i of
--             the limit that refused (the one with the longest wait), and
--             nothing was spent anywhere;
--   retry_ms  the wait, 0 when admitted, -1 when the amount exceeds that
--             limit's capacity (a burst, a budget): never admissible;
--   now       the clock used: give it to quota_refund.lua as "at";
--   then for every limit its remaining units and ms until it is whole
--   again (after the spend when admitted), for RateLimit headers.
--
-- A refused request writes nothing.  A limit whose amount is 0 (an images
-- limit and a call without images) is neither checked nor written.

--@include quota_core

-- TIME before writes: effects replication (the default since Redis 5;
-- needed explicitly before it, a no-op from 7)
if redis.replicate_commands then redis.replicate_commands() end

if #ARGV ~= #KEYS + 3 then
    error('quota: ARGV must be now, requests, images and one limit per key')
end

return quota_check(KEYS, 0, ARGV, 3, #KEYS, q_now(ARGV[1]),
                   q_int(ARGV[2], 'requests'), q_int(ARGV[3], 'images'))
