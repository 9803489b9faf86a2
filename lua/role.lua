-- role.lua - a role one node of the cluster plays at a time (the poller of
-- a source of others' connections: viewers.c), held as a key with a TTL,
-- so that it moves to another node within a TTL when its node dies.
--
-- KEYS: 1 sfl:role:<name>  STRING  the node that holds it, expiring
-- ARGV: 1 node id
--       2 ttl ms: take the role, or keep it, for this long; 0: give it up
--         (if this node holds it)
-- returns: 1 when the node holds the role for ttl ms from now, else 0
--
-- Built with prelude.lua in front. Redis's own expiry times it: no node's
-- clock is read.
local holder = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[2]) or 0
if ttl <= 0 then
    if holder == ARGV[1] then
        redis.call('DEL', KEYS[1])
    end
    return 0
end
if holder and holder ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', fmt('%d', ttl))
return 1
