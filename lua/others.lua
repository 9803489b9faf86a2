-- others.lua - the connections others hold on a login (viewers, other
-- devices), as a source saw them: counted by acquire.lua beside the leases.
--
-- KEYS: 1 the login's conf    HASH  gains external, external_at_ms, external_source,
--                                   max_age_ms
--       2 the login's leases  ZSET  (read: this cluster's checks on it now)
-- ARGV: 1 count (integer >= 0)
--       2 source ("dispatcharr", "xtream", ...; never a credential)
--       3 max_age_ms: the figure is good this long after now; acquire.lua
--         grants nothing on the login once it is older (0: it never ages)
--       4 "total" when count is every connection on the login, this
--         cluster's checks included (a panel's active_cons): the leases live
--         now are taken off, never below 0; anything else: count is others'
--         alone (Dispatcharr's proxy)
-- returns: {external, leases live now, max_streams (-1 if none), reserve}
--
-- Built with prelude.lua in front. The figure is written with Redis time,
-- never a node's clock.
local now = redis_now()
local count = math.max(0, math.floor(tonumber(ARGV[1]) or 0))
local live = redis.call('ZCOUNT', KEYS[2], '(' .. fmt('%d', now), '+inf')
local external = count
if ARGV[4] == 'total' then
    external = math.max(0, count - live)
end
redis.call('HSET', KEYS[1], 'external', external, 'external_at_ms', now, 'external_source',
           ARGV[2], 'max_age_ms', tonumber(ARGV[3]) or 0)
local conf = redis.call('HMGET', KEYS[1], 'max_streams', 'reserve')
return {external, live, tonumber(conf[1]) or -1, tonumber(conf[2]) or 0}
