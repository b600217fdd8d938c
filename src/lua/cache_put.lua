-- The recognize/detector cache: store the upstream's per-image answers,
-- unless the space changed meanwhile, and release the coalescing locks.
-- Every key it touches is declared in KEYS, under the space's hash tag.
--
--   KEYS[1]          the generation key, <base>:gen
--   KEYS[2…1+n]      the images' entry keys, <base>:e:<params id>:<sha256>
--   KEYS[2+n…1+2n]   their locks, <base>:lock:<params id>:<sha256>
--   ARGV[1]  the token cache_get returned to this request ("" when its
--            reply never came: then only the locks are released)
--   ARGV[2]  the entries' lifetime in ms
--   ARGV[3]  this request's id (the locks' owner)
--   ARGV[4…3+n]  the answers, in KEYS' order ("" = nothing to store: only
--            release the lock)
--
-- Stores "<token> <answer>": the token is "<generation> <node>"
-- (lib/cache_token.lua).  Returns the number of entries stored.
--
-- Why an answer is never stale: every change of a space (set, delete,
-- truncate, recognize with create_new, an answer with aliases_changed)
-- increments the space's generation after the upstream has answered it.
-- A recognize reads the token before it goes upstream (cache_get) and
-- stores only if the token is still the same (here, atomically):
--
--   - if the change's increment came before this store, the generation
--     differs and nothing is stored, whatever the upstream saw;
--   - if it comes after, what is stored now (old or new state) is under the
--     old generation, which the increment makes unreachable at once, on
--     every gateway instance.
--
-- So an entry reachable under the current token was computed by the
-- upstream after the last change that has been counted.  A failover may
-- lose an increment the old master took but did not pass on; the node
-- part of the token then differs on the promoted replica (a new
-- replication id), so every entry stored before the failover is a miss,
-- and a store whose lookup ran before it is refused here.  A change whose
-- increment could not reach Redis is the one hole: the worker retries it,
-- and the entries' lifetime (smarty_cache_ttl) bounds it.

--@include cache_token

if redis.replicate_commands then redis.replicate_commands() end

local n = (#KEYS - 1) / 2

if n < 0 or n ~= math.floor(n) then
    return redis.error_reply('cache_put: KEYS must hold 1 + 2n keys')
end

local token = cache_token(KEYS[1])
local ttl = ARGV[2]
local owner = ARGV[3]
local same = (token == ARGV[1])
local stored = 0

for i = 1, n do
    local value = ARGV[3 + i] or ''

    if same and value ~= '' then
        redis.call('SET', KEYS[1 + i], token .. ' ' .. value, 'PX', ttl)
        stored = stored + 1
    end

    local lock = KEYS[1 + n + i]
    if redis.call('GET', lock) == owner then
        redis.call('DEL', lock)
    end
end

return stored
