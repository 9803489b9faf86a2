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
-- Built with prelude.lua in front: the hand-off (hand_off) is the one
-- acquire.lua makes of a slot freed without a release.
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
local now = redis_now()
local now_s = fmt('%d', now)
local id = ARGV[1]
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
reap_tickets(now_s)
local head = pop_ticket()
if head then
    local deadline, fresh = hand_off(head, now, tonumber(ARGV[4]), ARGV[2], ARGV[3])
    keep_keys(now, deadline, KEYS[1], fresh)
end
return 1
