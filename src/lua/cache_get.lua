-- The recognize/detector cache: look up every image of a request in one
-- round trip, reading the space's token (generation and node) in the same
-- script, and, when quotas apply, check and spend them in the same script
-- too (one round trip for both: the quota is spent only on the images that
-- go upstream).  Every key it touches is declared in KEYS, all under the
-- space's hash tag: one Redis Cluster slot.
--
--   KEYS[1]              the generation key, <base>:gen
--   KEYS[2…1+q]          the quota's state keys (src/lua/quota.lua), q >= 0
--   KEYS[2+q…1+q+n]      the n images' entry keys,
--                        <base>:e:<params id>:<sha256>
--   KEYS[2+q+n…1+q+2n]   their coalescing locks, <base>:lock:<params id>:
--                        <sha256>
--   ARGV[1]      coalescing lock lifetime in ms, 0 for no coalescing
--   ARGV[2]      this request's id, the lock's owner
--   ARGV[3]      q, the number of quota limits (0: no quota)
--   when q > 0:
--   ARGV[4]      the clock in ms, or "" for Redis's TIME (production)
--   ARGV[5]      1 when cache hits spend too (smarty_quota_hits), else 0
--   ARGV[6]      the requests this request spent already (0 or 1: a look
--                again while coalescing spends only what is new)
--   ARGV[7]      the images it spent already
--   ARGV[8…7+q]  the limits, as quota.lua takes them
--
-- An entry's value is "<generation> <node> <answer>" (cache_put.lua): it
-- is a hit only when its first two words are this lookup's token, and
-- then ri is the answer alone.  Locks do not depend on the token, so that
-- a request can release its locks without knowing it (when its lookup's
-- reply came too late).  Returns { token, r1, r2, … } and, when q > 0,
-- quota.lua's answer after them; ri:
--   a string  the cached answer for image i (a hit);
--   0         a miss (no coalescing, or the quota refused: no lock taken);
--   1         a miss, and this request now holds the lock: it goes upstream
--             and stores (or releases) with cache_put;
--   2         a miss, another request holds the lock: look again later.
--
-- The quota spends 1 request and one image per image that is not a hit
-- (a miss, or one another request is fetching: if that one ends as a hit
-- when looked at again, the gateway gives the image back), less what the
-- request spent already; with ARGV[5] = 1, every image.  A refused request
-- takes no lock and spends nothing.

--@include quota_core
--@include cache_token

if redis.replicate_commands then redis.replicate_commands() end

local q = tonumber(ARGV[3])
local n = (#KEYS - 1 - q) / 2

if n < 0 or n ~= math.floor(n) then
    return redis.error_reply('cache_get: KEYS must hold 1 + q + 2n keys')
end

local token = cache_token(KEYS[1])
local head = token .. ' '
local hl = #head
local lock_ms = tonumber(ARGV[1])
local owner = ARGV[2]
local e0 = 1 + q
local l0 = 1 + q + n
local out = { token }
local missing = 0

for i = 1, n do
    local v = redis.call('GET', KEYS[e0 + i])
    if v and string.sub(v, 1, hl) == head then
        out[#out + 1] = string.sub(v, hl + 1)
    else
        out[#out + 1] = 0
        missing = missing + 1
    end
end

if q > 0 then
    local spent_r = q_int(ARGV[6], 'requests spent')
    local spent_i = q_int(ARGV[7], 'images spent')
    local images = missing
    local requests = (missing > 0) and 1 or 0

    if ARGV[5] == '1' then
        images = n
        requests = 1
    end

    images = (images > spent_i) and (images - spent_i) or 0
    requests = (requests > spent_r) and (requests - spent_r) or 0

    local res = quota_check(KEYS, 1, ARGV, 7, q, q_now(ARGV[4]), requests,
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
    for i = 1, n do
        if out[i + 1] == 0 then
            local lock = KEYS[l0 + i]
            if redis.call('SET', lock, owner, 'NX', 'PX', lock_ms) then
                out[i + 1] = 1
            elseif redis.call('GET', lock) == owner then
                out[i + 1] = 1      -- the same image twice in one request
            else
                out[i + 1] = 2
            end
        end
    end
end

return out
