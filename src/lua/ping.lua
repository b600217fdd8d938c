-- The health probe: proves that EVALSHA, KEYS and ARGV work.
--
--   KEYS[1]  a key, only looked at (EXISTS), never written
--   ARGV[1]  a token, echoed back so that the caller can check that the
--            reply is the one to its own command
--
-- Returns { "PONG", ARGV[1], EXISTS(KEYS[1]) }.

local pong = redis.call('PING')

return { pong['ok'], ARGV[1], redis.call('EXISTS', KEYS[1]) }
