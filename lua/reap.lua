-- reap.lua - remove a consumer of a stopped node from the queue's group, and
-- only when that loses no work: XGROUP DELCONSUMER drops the consumer's
-- pending entries unacknowledged (nobody would ever be given them again), so
-- a consumer holding any is kept until other nodes have claimed them.
--
-- KEYS: 1 sfl:jobs          STREAM the shared queue
--       2 sfl:node:<name>   HASH   the consumer's node registry entry (short TTL)
-- ARGV: 1 the queue's consumer group (sfl-nodes)
--       2 the consumer's name (its node id)
--       3 idle ms after which a consumer counts as gone even while its
--         registry entry is there (0: any; a node leaving the group itself)
-- returns: 1 removed; 0 kept (pending entries, or registered and idle less
--          than ARGV[3]) or not a consumer of the group
--
-- Built with prelude.lua in front.
if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
local idle
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local f = {}
    for i = 1, #c, 2 do
        f[c[i]] = c[i + 1]
    end
    if f['name'] == ARGV[2] then
        if tonumber(f['pending']) > 0 then
            return 0
        end
        idle = tonumber(f['idle'])
    end
end
if idle == nil then
    return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 and idle < tonumber(ARGV[3]) then
    return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
