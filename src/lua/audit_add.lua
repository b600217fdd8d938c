-- The audit trail: a batch of records added to the stream every gateway
-- instance shares, trimmed as it grows (docs/audit.md).
--
--   KEYS[1]  the stream
--   ARGV[1]  "maxlen" or "keep": how the stream is trimmed
--   ARGV[2]  maxlen: the entries kept (about: MAXLEN ~); keep: for how
--            many milliseconds (MINID ~ now - keep, by Redis's clock)
--   ARGV[3..] the records, one entry each, field "r"
--
-- Returns the number of entries added.

local key = KEYS[1]
local how = ARGV[1]
local limit = ARGV[2]

if how == 'keep' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    limit = string.format('%d', math.max(0, now - tonumber(ARGV[2])))
    how = 'MINID'
else
    how = 'MAXLEN'
end

local n = 0

for i = 3, #ARGV do
    redis.call('XADD', key, how, '~', limit, '*', 'r', ARGV[i])
    n = n + 1
end

return n
