-- The recognize/detector cache: look up every image of a request in one
-- round trip, reading the space's generation in the same script.
--
--   KEYS[1]  the generation key, <base>:gen (absent means generation 0)
--   ARGV[1]  the key base, e.g. "smarty:{s1}" (the hash tag keeps every key
--            of a space in one slot)
--   ARGV[2]  the parameters' id (method and normalised meta, hashed)
--   ARGV[3]  coalescing lock lifetime in ms, 0 for no coalescing
--   ARGV[4]  this request's id, the lock's owner
--   ARGV[5…] the images' SHA-256, hex
--
-- An entry's key is <base>:g<generation>:<params id>:<sha256>; its lock is
-- <base>:lock:<params id>:<sha256>, the same for every generation, so that
-- a request can release its locks without knowing the generation (when its
-- lookup's reply came too late).  Returns { generation, r1, r2, … }, ri:
--   a string  the cached answer for image i (a hit);
--   0         a miss (no coalescing);
--   1         a miss, and this request now holds the lock: it goes upstream
--             and stores (or releases) with cache_put;
--   2         a miss, another request holds the lock: look again later.

local gen = redis.call('GET', KEYS[1]) or '0'
local prefix = ARGV[1] .. ':g' .. gen .. ':' .. ARGV[2] .. ':'
local lock_prefix = ARGV[1] .. ':lock:' .. ARGV[2] .. ':'
local lock_ms = tonumber(ARGV[3])
local owner = ARGV[4]
local out = { gen }

for i = 5, #ARGV do
    local key = prefix .. ARGV[i]
    local v = redis.call('GET', key)

    if v then
        out[#out + 1] = v

    elseif lock_ms > 0 then
        local lock = lock_prefix .. ARGV[i]
        if redis.call('SET', lock, owner, 'NX', 'PX', lock_ms) then
            out[#out + 1] = 1
        elseif redis.call('GET', lock) == owner then
            out[#out + 1] = 1       -- the same image twice in one request
        else
            out[#out + 1] = 2
        end

    else
        out[#out + 1] = 0
    end
end

return out
