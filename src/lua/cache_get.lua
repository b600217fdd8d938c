-- The recognize/detector cache: look up every image of a request in one
-- round trip, reading the space's generation in the same script, and, when
-- quotas apply, check and spend them in the same script too (one round
-- trip for both: the quota is spent only on the images that go upstream).
--
--   KEYS[1]      the generation key, <base>:gen (absent means generation 0)
--   KEYS[2…1+q]  the quota's state keys (src/lua/quota.lua), q >= 0
--   ARGV[1]      the key base, e.g. "smarty:{s1}" (the hash tag keeps every
--                key of a space in one slot)
--   ARGV[2]      the parameters' id (method and normalised meta, hashed)
--   ARGV[3]      coalescing lock lifetime in ms, 0 for no coalescing
--   ARGV[4]      this request's id, the lock's owner
--   ARGV[5]      q, the number of quota limits (0: no quota)
--   when q > 0:
--   ARGV[6]      the clock in ms, or "" for Redis's TIME (production)
--   ARGV[7]      1 when cache hits spend too (smarty_quota_hits), else 0
--   ARGV[8]      the requests this request spent already (0 or 1: a look
--                again while coalescing spends only what is new)
--   ARGV[9]      the images it spent already
--   ARGV[10…9+q] the limits, as quota.lua takes them
--   then         the images' SHA-256, hex
--
-- An entry's key is <base>:g<generation>:<params id>:<sha256>; its lock is
-- <base>:lock:<params id>:<sha256>, the same for every generation, so that
-- a request can release its locks without knowing the generation (when its
-- lookup's reply came too late).  Returns { generation, r1, r2, … } and,
-- when q > 0, quota.lua's answer after them; ri:
--   a string  the cached answer for image i (a hit);
--   0         a miss (no coalescing, or the quota refused: no lock taken);
--   1         a miss, and this request now holds the lock: it goes upstream
--             and stores (or releases) with cache_put;
--   2         a miss, another request holds the lock: look again later.
--
-- The quota spends 1 request and one image per image that is not a hit
-- (a miss, or one another request is fetching: if that one ends as a hit
-- when looked at again, the gateway gives the image back), less what the
-- request spent already; with ARGV[7] = 1, every image.  A refused request
-- takes no lock and spends nothing.

--@include quota_core

if redis.replicate_commands then redis.replicate_commands() end

local gen = redis.call('GET', KEYS[1]) or '0'
local prefix = ARGV[1] .. ':g' .. gen .. ':' .. ARGV[2] .. ':'
local lock_prefix = ARGV[1] .. ':lock:' .. ARGV[2] .. ':'
local lock_ms = tonumber(ARGV[3])
local owner = ARGV[4]
local q = tonumber(ARGV[5])
local first = (q > 0) and (10 + q) or 6
local out = { gen }
local missing = 0

for i = first, #ARGV do
    local v = redis.call('GET', prefix .. ARGV[i])
    if v then
        out[#out + 1] = v
    else
        out[#out + 1] = 0
        missing = missing + 1
    end
end

if q > 0 then
    local spent_r = q_int(ARGV[8], 'requests spent')
    local spent_i = q_int(ARGV[9], 'images spent')
    local images = missing
    local requests = (missing > 0) and 1 or 0

    if ARGV[7] == '1' then
        images = #ARGV - first + 1
        requests = 1
    end

    images = (images > spent_i) and (images - spent_i) or 0
    requests = (requests > spent_r) and (requests - spent_r) or 0

    local res = quota_check(KEYS, 1, ARGV, 9, q, q_now(ARGV[6]), requests,
                            images)

    for k = 1, #res do
        out[#out + 1] = res[k]
    end

    -- the spend, for the caller's bookkeeping
    out[#out + 1] = (res[1] == 0) and requests or 0
    out[#out + 1] = (res[1] == 0) and images or 0

    if res[1] ~= 0 then
        return out
    end
end

if lock_ms > 0 then
    for i = first, #ARGV do
        local k = i - first + 2
        if out[k] == 0 then
            local lock = lock_prefix .. ARGV[i]
            if redis.call('SET', lock, owner, 'NX', 'PX', lock_ms) then
                out[k] = 1
            elseif redis.call('GET', lock) == owner then
                out[k] = 1      -- the same image twice in one request
            else
                out[k] = 2
            end
        end
    end
end

return out
