-- The upstream's token an instance fetched, for every other instance; and
-- the fetch's lock released (docs/token.md, token_sync.lua).
--
--   KEYS[1]  the token (a hash: exp, life, ahead, id, seal)
--   KEYS[2]  the lock
--   ARGV[1]  this fetch's owner: the lock is deleted only if it is still
--            this fetch's
--   ARGV[2]  the token's life left, ms; "" when the fetch failed (then the
--            lock alone is released)
--   ARGV[3]  its whole life, ms, from its fetch
--   ARGV[4]  ahead: ms before its expiry when it is replaced
--   ARGV[5]  its id
--   ARGV[6]  its seal
--   ARGV[7]  how long the hash is kept after the expiry, ms (its refresh
--            token outlives the access token)
--
-- Returns 1 when the lock was this fetch's, else 0.

if redis.replicate_commands then redis.replicate_commands() end

if ARGV[2] ~= '' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local left = tonumber(ARGV[2])

    redis.call('HSET', KEYS[1], 'exp', now + left, 'life', ARGV[3],
               'ahead', ARGV[4], 'id', ARGV[5], 'seal', ARGV[6])
    redis.call('PEXPIRE', KEYS[1], left + tonumber(ARGV[7]))
end

if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
    return 1
end

return 0
