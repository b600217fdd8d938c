-- The cache's token of a space on this server: "<generation> <node>".
-- <generation> is the space's generation (absent: "0"); <node> the first
-- 16 hex digits of this server's replication id (INFO replication,
-- master_replid), which changes when a replica is promoted (a failover)
-- or a master starts without its data.  An entry is stored with the token
-- its lookup read, and is a hit only under the same token: a bump moves
-- the generation, a failover moves the node, and either makes every entry
-- stored before it unreachable (docs/cache.md, "Never stale").
local function cache_token(gen_key)
    local gen = redis.call('GET', gen_key) or '0'
    local info = redis.call('INFO', 'replication')
    local id = string.match(info, 'master_replid:(%x+)') or '0'
    return gen .. ' ' .. string.sub(id, 1, 16)
end
