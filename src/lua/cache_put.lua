-- The recognize/detector cache: store the upstream's per-image answers,
-- unless the space changed meanwhile, and release the coalescing locks.
--
--   KEYS[1]  the generation key, <base>:gen
--   ARGV[1]  the key base
--   ARGV[2]  the parameters' id
--   ARGV[3]  the generation cache_get returned to this request ("" when
--            its reply never came: then only the locks are released)
--   ARGV[4]  the entries' lifetime in ms
--   ARGV[5]  this request's id (the locks' owner)
--   ARGV[6…] pairs: image SHA-256 (hex), answer ("" = nothing to store:
--            only release the lock)
--
-- Returns the number of entries stored.
--
-- Why an answer is never stale: every change of a space (set, delete,
-- truncate, recognize with create_new, an answer with aliases_changed)
-- increments the space's generation after the upstream has answered it.
-- A recognize reads the generation before it goes upstream (cache_get) and
-- stores only if the generation is still the same (here, atomically):
--
--   - if the change's increment came before this store, the generation
--     differs and nothing is stored, whatever the upstream saw;
--   - if it comes after, what is stored now (old or new state) is under the
--     old generation, which the increment makes unreachable at once, on
--     every gateway instance.
--
-- So an entry reachable under the current generation was computed by the
-- upstream after the last change that has been counted.  A change whose
-- increment could not reach Redis is the one hole: the entries' lifetime
-- (smarty_cache_ttl) bounds it.

local gen = redis.call('GET', KEYS[1]) or '0'
local prefix = ARGV[1] .. ':g' .. ARGV[3] .. ':' .. ARGV[2] .. ':'
local lock_prefix = ARGV[1] .. ':lock:' .. ARGV[2] .. ':'
local ttl = ARGV[4]
local owner = ARGV[5]
local same = (gen == ARGV[3])
local stored = 0

for i = 6, #ARGV, 2 do
    local key = prefix .. ARGV[i]
    local value = ARGV[i + 1]

    if same and value ~= '' then
        redis.call('SET', key, value, 'PX', ttl)
        stored = stored + 1
    end

    local lock = lock_prefix .. ARGV[i]
    if redis.call('GET', lock) == owner then
        redis.call('DEL', lock)
    end
end

return stored
