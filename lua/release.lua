-- release.lua - give a lease back, handing the slot straight to the oldest
-- waiting ticket if there is one; or withdraw a waiting ticket. Idempotent:
-- releasing twice, or a lease that already expired, frees nothing and
-- announces nothing.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET
--       2 sfl:{a:<id>}:holders      HASH
--       3 sfl:{a:<id>}:conf         HASH  (max_streams, recover_until_ms)
--       4 sfl:{a:<id>}:fence        STRING
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry
-- ARGV: 1 lease id, or a ticket to withdraw
--       2 channel for announcements (sfl:released; a hand-off goes to
--         sfl:released:<node of the ticket>)
--       3 account id
--       4 hand-off ms: a slot handed to a ticket is held this long for its node
--         to take it over (acquire.lua with the ticket as lease id); short, so
--         that a ticket whose node died keeps the slot only briefly
-- returns: 1 if the lease was held and is now removed, 0 if it was not held
--
-- Announcement: "<account> <ticket> <deadline_ms> <fence>" on
-- sfl:released:<node> when the slot went to that node's ticket: only that
-- node is woken. The slot is then a lease of the ticket until deadline_ms
-- (Redis time); its node may start at once, while it takes the lease over
-- (acquire.lua) for its full TTL, if it can tell the deadline is still
-- ahead (limiter.c maps Redis time to its own clock). A slot freed with
-- nobody queued is not announced: every node that waits for it has a ticket
-- queued (acquire.lua queues one with every denial), and a node whose ticket
-- expired asks again on its own timer.
--
-- An id is never a lease and a queued ticket at once (acquire.lua queues only
-- ids that hold no lease, and takes an id out of the queue when it makes its
-- lease), so a lease given back has no ticket to withdraw.
local KEEP_MS = 10000  -- as in acquire.lua: idle keys outlive their data by this
local SLACK_MS = 500

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local fmt = string.format -- numbers go to Redis as '%d': tostring's '%.14g' costs more
local now_s = fmt('%d', now)
if redis.call('ZREM', KEYS[1], id) == 0 then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    redis.call('HDEL', KEYS[2], id)
    return 0
end
redis.call('HDEL', KEYS[2], id)

local live = redis.call('ZCOUNT', KEYS[1], '(' .. now_s, '+inf')
local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'recover_until_ms')
local limit, recover_until = tonumber(conf[1]), tonumber(conf[2]) or 0
if not limit or now < recover_until or (limit > 0 and live >= limit) then
    return 1
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now_s)
if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_s)
    redis.call('ZREM', KEYS[5], unpack(stale))
end
local head = redis.call('ZPOPMIN', KEYS[5])[1]
if not head then
    return 1
end
redis.call('ZREM', KEYS[6], head)

local fence, fresh = redis.call('INCR', KEYS[4]), false
if fence == 1 then
    -- The counter expired with the idle account: start above any token it gave.
    fence, fresh = now, true
    redis.call('SET', KEYS[4], now_s)
end
local node = string.match(head, '^(.*):[^:]*$') or head
local deadline = now + tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], fmt('%d', deadline), head)
redis.call('HSET', KEYS[2], head, fmt('{"node":%s,"stream":"","since_ms":%d,"fence":%d}',
                                      cjson.encode(node), now, fence))
-- Key expiry, as acquire.lua's keep_keys: read, and pushed out only when short.
local left = redis.call('PTTL', KEYS[1])
if fresh or left < 0 or now + left < deadline + KEEP_MS then
    local l = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) or 0
    local w = tonumber(redis.call('ZRANGE', KEYS[6], -1, -1, 'WITHSCORES')[2]) or 0
    local at = math.max(deadline, l, w) + KEEP_MS + SLACK_MS
    for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6]}) do
        redis.call('PEXPIREAT', k, fmt('%d', at))
    end
end
redis.call('PUBLISH', ARGV[2] .. ':' .. node, fmt('%s %s %d %d', ARGV[3], head, deadline, fence))
return 1
