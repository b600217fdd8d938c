-- The upstream's token, shared by every instance of the gateway: take the
-- one another instance fetched, or the right to fetch one (a lock with a
-- deadline), or learn that another instance is fetching it (docs/token.md).
--
--   KEYS[1]  the token: a hash of exp (Redis's clock, ms), life (ms, from
--            its fetch to exp), ahead (ms before exp when it is replaced),
--            id (a prefix of the access token's SHA-256, never the token)
--            and seal (the access and refresh tokens, sealed with a key
--            only the gateways have)
--   KEYS[2]  the lock of the instance fetching a new one
--   ARGV[1]  the id of a token the upstream refused, "" for none
--   ARGV[2]  this fetch's owner (instance, worker, counter)
--   ARGV[3]  the lock's life, ms: the longest a fetch may take
--
-- Returns one of
--   { "token", seal, ms left, life, ahead }
--                               a token to take: valid and not yet due
--   { "fetch", seal or "" }     this instance holds the lock now; the seal
--                               is the previous token's, for its refresh
--                               token
--   { "wait", ms }              another instance holds the lock, that long

if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'exp', 'life', 'ahead', 'id', 'seal')
local exp = tonumber(v[1])
local life = tonumber(v[2]) or 0
local ahead = tonumber(v[3]) or 0

if exp and v[5] and exp - ahead > now and v[4] ~= ARGV[1] then
    return { 'token', v[5], exp - now, life, ahead }
end

if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
    return { 'fetch', v[5] or '' }
end

return { 'wait', redis.call('PTTL', KEYS[2]) }
