-- release.lua - give a lease back, handing the slot straight to the oldest
-- waiting ticket if there is one; or withdraw a waiting ticket. Idempotent:
-- releasing twice, or a lease that already expired, frees nothing and
-- announces nothing.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET   of the lease's login
--       2 sfl:{a:<id>}:holders      HASH
--       3 sfl:{a:<id>}:conf         HASH  (max_streams, reserve, ...)
--       4 sfl:{a:<id>}:fence        STRING
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival, of the lease's account
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry
--       7, 8 ... the waiters and waiters:exp of every other account that uses
--         the login (a login shared by accounts): the slot goes to the oldest
--         ticket of them all
--       last: sfl:epoch                  HASH  the namespace's epoch marker
--         (epoch.lua): no hand-off inside the recovery window
-- ARGV: 1 lease id, or a ticket to withdraw
--       2 channel for announcements (sfl:released; a hand-off goes to
--         sfl:released:<node of the ticket>)
--       3 account id (of KEYS 5-6)
--       4 hand-off ms: a slot handed to a ticket is held this long for its node
--         to take it over (acquire.lua with the ticket as lease id); short, so
--         that a ticket whose node died keeps the slot only briefly
--       5 login id, announced with a hand-off ("" or absent: an account of one
--         login, announced without)
--       6 ... the account ids of KEYS 7-8, 9-10, ...
-- returns: 1 if the lease was held and is now removed (or cooling down: below),
--          0 if it was not held
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
local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'reserve', 'cooldown_ms', 'external',
                        'external_at_ms', 'max_age_ms', 'panel_max', 'learned_limit')
local cooldown = tonumber(conf[3]) or 0
if cooldown > 0 then
    -- The provider counts a closed connection a while longer (conf.lua's
    -- cooldown_ms): the slot stays taken, as "cooldown:<id>", until then;
    -- the next ask after that (every waiting node asks again by then: a
    -- denial's retry_ms is the soonest deadline) hands it to the oldest ticket.
    local holder = redis.call('HGET', KEYS[2], id)
    redis.call('HDEL', KEYS[2], id)
    local until_ms = now + cooldown
    redis.call('ZADD', KEYS[1], fmt('%d', until_ms), 'cooldown:' .. id)
    redis.call('HSET', KEYS[2], 'cooldown:' .. id, holder or '{}')
    keep_keys(now, until_ms, KEYS[1], false, 1, 5)
    return 1
end
redis.call('HDEL', KEYS[2], id)

local live = redis.call('ZCOUNT', KEYS[1], '(' .. now_s, '+inf') + (tonumber(conf[2]) or 0) +
                 (tonumber(conf[4]) or 0)
local limit = effective_limit(tonumber(conf[1]), conf[7], conf[8])
local max_age = tonumber(conf[6]) or 0
local stale = max_age > 0 and now - (tonumber(conf[5]) or 0) > max_age
if not limit or stale or (limit > 0 and live >= limit) then
    return 1
end
-- A Redis that lost its data does not hand a slot out before the window
-- ends (its waiting nodes ask again then: acquire.lua's retry_ms, which
-- also makes a missing marker: release knows no window length).
if now < epoch_window(now, nil) then
    return 1
end
-- The oldest live ticket of the accounts that use the login.
local w, account = 5, ARGV[3]
if #KEYS > 7 then
    local oldest
    for j = 5, #KEYS - 1, 2 do
        reap_tickets(now_s, j)
        local h = redis.call('ZRANGE', KEYS[j], 0, 0, 'WITHSCORES')
        if h[2] and (not oldest or tonumber(h[2]) < oldest) then
            oldest, w, account = tonumber(h[2]), j, j == 5 and ARGV[3] or ARGV[6 + (j - 7) / 2]
        end
    end
else
    reap_tickets(now_s, w)
end
local head = pop_ticket(w)
if head then
    local deadline, fresh = hand_off(head, now, tonumber(ARGV[4]), ARGV[2], account, 1, ARGV[5])
    keep_keys(now, deadline, KEYS[1], fresh, 1, w)
end
return 1
