-- A test aid for the health endpoint ("smarty_redis_health allow_size=..."):
-- a bulk reply of ARGV[1] bytes, to prove that large replies are read whole.
--
--   ARGV[1]  the size in bytes

local n = tonumber(ARGV[1])

if n == nil or n < 0 then
    return redis.error_reply('filler: ARGV[1] must be a size in bytes')
end

return string.rep('x', n)
