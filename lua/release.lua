-- release.lua - give a lease back, handing the slot straight to the oldest
-- waiting ticket if there is one. Idempotent: releasing twice, or a lease
-- that already expired, frees nothing and announces nothing.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET
--       2 sfl:{a:<id>}:holders      HASH
--       3 sfl:{a:<id>}:conf         HASH  (max_streams, recover_until_ms)
--       4 sfl:{a:<id>}:fence        STRING
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry
-- ARGV: 1 lease id (also withdrawn as a ticket, if it was one)
--       2 channel for announcements (sfl:released; a hand-off goes to
--         sfl:released:<node of the ticket>)
--       3 account id
--       4 hand-off ms: a slot handed to a ticket is held this long for its node
--         to take it over (acquire.lua with the ticket as lease id)
-- returns: 1 if the lease was held and is now removed, 0 if it was not held
--
-- Announcement: "<account>" on sfl:released when the slot is free for
-- anyone, or "<account> <ticket>" on sfl:released:<node> when it went to that
-- node's ticket: only that node is woken (and sent a message), so a release
-- costs one ask and one delivery, not one per waiting node.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
if redis.call('ZREM', KEYS[1], id) == 0 then
    redis.call('HDEL', KEYS[2], id)
    return 0
end
redis.call('HDEL', KEYS[2], id)

local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
    redis.call('ZREM', KEYS[5], unpack(stale))
end
local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'recover_until_ms')
local limit, recover_until = tonumber(conf[1]), tonumber(conf[2]) or 0
local head = redis.call('ZRANGE', KEYS[5], 0, 0)[1]
local live = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if head and limit and now >= recover_until and (limit == 0 or live < limit) then
    redis.call('ZREM', KEYS[5], head)
    redis.call('ZREM', KEYS[6], head)
    local fence = redis.call('INCR', KEYS[4])
    if fence == 1 then
        fence = now
        redis.call('SET', KEYS[4], fence)
    end
    local node = string.match(head, '^(.*):[^:]*$') or head
    local deadline = now + tonumber(ARGV[4])
    redis.call('ZADD', KEYS[1], deadline, head)
    redis.call('HSET', KEYS[2], head, cjson.encode({node = node, stream = '', since_ms = now,
                                                    fence = fence}))
    local keep = math.max(deadline, tonumber(redis.call('ZRANGE', KEYS[1], -1, -1,
                                                          'WITHSCORES')[2])) - now + 10000
    redis.call('PEXPIRE', KEYS[1], keep)
    redis.call('PEXPIRE', KEYS[2], keep)
    redis.call('PEXPIRE', KEYS[4], keep)
    redis.call('PUBLISH', ARGV[2] .. ':' .. node, ARGV[3] .. ' ' .. head)
    return 1
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
