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
--       then, optional (nb = 6 + the number of those account ids): the
--       releasing node's next ask for the account of KEYS 5-6, in the same
--       script (src/release.c sends it when a wait for the account starts in
--       the loop turn of the release):
--       nb     its id (a ticket that holds no lease)
--       nb+1   ticket ttl ms     nb+2 lease ttl ms
--       nb+3   node id           nb+4 stream label
--       nb+5   recovery window ms, opened when the epoch marker is missing
-- returns: 1 if the lease was held and is now removed (or cooling down: below),
--          0 if it was not held; with a next ask, when the lease was held
--          and the login has a conf of its own (no group: account.lua), the
--          answer is acquire.lua's for that ask, with a last element 1 (the
--          release's own answer):
--          {1, fence, deadline_ms, in_use, limit, 1, 1}   the freed slot went to
--                                                  the next ask itself (nobody older
--                                                  waited): a lease of ttl ms
--          {0, retry_ms, in_use, limit, reason, 0, now_ms, 1}  queued as a ticket
--                                                  behind the others (the position is
--                                                  not counted: 0), as a denied ask
--                                                  queues it
--          any other answer: the next ask was not made (the caller asks)
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
-- Cost (issue #17): with the next ask in it, a contended cycle is this one
-- script (and its announcement) instead of a release and a denied ask. The
-- ask adds its ticket's two ZADDs to the script, before the announcement
-- goes out (Redis delivers it when the script ends). Tickets are reaped only
-- when the oldest may have expired (pop_live_ticket). The lease given back
-- leaves the keys after the hand-off's entry is in them (drop), so that on
-- a login of 1 they are not deleted and made again without a TTL: 17 calls
-- per contended cycle there, as at any limit (the queue's TTL is checked on
-- its own: one PTTL), instead of 23. A hand-off whose hold ends before the
-- lease given back would have (a check that ran long enough to be taken
-- over: a full lease, renewed) does not read the login's TTL: keep_keys
-- kept the keys past that lease's deadline when it was written. One call
-- less there; a lease given back while still a hand-off's hold (checks
-- shorter than a third of handoff_ms) ends before the new hold does.
--
-- An id is never a lease and a queued ticket at once (acquire.lua queues only
-- ids that hold no lease, and takes an id out of the queue when it makes its
-- lease), so a lease given back has no ticket to withdraw.
local now, t = redis_now()
local now_s = fmt('%d', now)
local id = ARGV[1]
local nb = 6 + (#KEYS - 7) / 2
local nx = ARGV[nb] -- the next ask's id, or nil
-- The leases, read once: whether id is one of them, and the live others
-- with the soonest deadline among them (a next ask's retry).
local FETCH = 8 -- leases read in one call; a login with more is counted instead
local r = redis.call('ZRANGE', KEYS[1], 0, FETCH - 1, 'WITHSCORES')
local held, live, soonest, mine = false, 0, nil, nil
if #r < 2 * FETCH then
    for i = 1, #r, 2 do
        local d = tonumber(r[i + 1])
        if r[i] == id then
            held, mine = true, d
        else
            soonest = soonest or d
            if d > now then
                live = live + 1
            end
        end
    end
else
    mine = tonumber(redis.call('ZSCORE', KEYS[1], id))
    held = mine ~= nil
    live = redis.call('ZCOUNT', KEYS[1], '(' .. now_s, '+inf') - ((mine or 0) > now and 1 or 0)
    soonest = tonumber(r[r[1] == id and 4 or 2])
end
if not held then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    redis.call('HDEL', KEYS[2], id)
    return 0
end
local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'reserve', 'cooldown_ms', 'external',
                        'external_at_ms', 'max_age_ms', 'panel_max', 'learned_limit', 'group')
local limit = effective_limit(tonumber(conf[1]), conf[7], conf[8])
if conf[9] then
    -- The account's keys moved to a group's (account.lua): the release is
    -- done, but a next ask here would be counted nowhere. acquire.lua tells
    -- the node.
    nx = nil
end
local extra = (tonumber(conf[2]) or 0) + (tonumber(conf[4]) or 0)

-- The lease given back. Where a slot goes on to someone, after that one's
-- entry is written: a login's leases and holders keys never empty on the
-- way (Redis would delete them, and the entry written next would make them
-- again without a TTL, for keep_keys to push out on all five keys: seven
-- calls more per hand-off on a login of 1).
local function drop()
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
end

-- The next ask's ticket ttl, at least TICKET_MIN_MS as in acquire.lua.
local function ticket_ttl()
    return math.max(tonumber(ARGV[nb + 1]), TICKET_MIN_MS)
end

-- The next ask's ticket, queued as acquire.lua queues a denied ask's:
-- arrival in ms to the microsecond, expiry ticket ttl from now.
local function enqueue_next()
    local us = tonumber(t[2])
    redis.call('ZADD', KEYS[5], 'NX', fmt('%s%03d.%03d', t[1], math.floor(us / 1000), us % 1000),
               nx)
    redis.call('ZADD', KEYS[6], fmt('%d', now + ticket_ttl()), nx)
end

-- The next ask denied, answered as acquire.lua answers a denial (its ticket
-- queued, and its keys kept when keep is set), in_use being the login's;
-- retry at soonest (the soonest lease deadline, or the window's end).
local function deny_next(reason, in_use, keep, soonest_ms)
    if keep then
        enqueue_next()
        keep_keys(now, now + ticket_ttl(), KEYS[5], false, 1, 5)
    end
    local retry = soonest_ms and math.max(1, soonest_ms - now) or 1
    return {0, retry, in_use, limit, reason, 0, now, 1}
end

local cooldown = tonumber(conf[3]) or 0
if cooldown > 0 then
    -- The provider counts a closed connection a while longer (conf.lua's
    -- cooldown_ms): the slot stays taken, as "cooldown:<id>", until then;
    -- the next ask after that (every waiting node asks again by then: a
    -- denial's retry_ms is the soonest deadline) hands it to the oldest ticket.
    local holder = redis.call('HGET', KEYS[2], id)
    local until_ms = now + cooldown
    redis.call('ZADD', KEYS[1], fmt('%d', until_ms), 'cooldown:' .. id)
    redis.call('HSET', KEYS[2], 'cooldown:' .. id, holder or '{}')
    drop()
    keep_keys(now, until_ms, KEYS[1], false, 1, 5)
    if nx and limit then
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
        return deny_next('full', redis.call('ZCARD', KEYS[1]) + extra, true, tonumber(first))
    end
    return 1
end

live = live + extra
local max_age = tonumber(conf[6]) or 0
local stale = max_age > 0 and now - (tonumber(conf[5]) or 0) > max_age
if not limit then
    drop()
    return 1 -- no conf: a next ask goes as acquire.lua, which restores it
end
if stale or (limit > 0 and live >= limit) then
    drop()
    if nx then
        return deny_next(stale and 'stale' or 'full', live, true, soonest)
    end
    return 1
end
-- A Redis that lost its data does not hand a slot out before the window
-- ends (its waiting nodes ask again then: acquire.lua's retry_ms, which
-- also makes a missing marker: release knows no window length, unless a
-- next ask gives it).
local recover_until, opened = epoch_window(now, nx and ARGV[nb + 5] or nil)
if now < recover_until then
    drop()
    if nx then
        return deny_next('recovering', live, true, recover_until)
    end
    return 1
end
-- The oldest live ticket of the accounts that use the login. The next ask
-- queues first: it is the youngest, so it gets the slot only if nobody
-- else waits; and the queue it joins is not emptied by the pop below, so
-- one keep_keys covers both.
if nx then
    enqueue_next()
end
local w, account, head = 5, ARGV[3], nil
if #KEYS > 7 then
    local oldest
    for j = 5, #KEYS - 1, 2 do
        reap_tickets(now_s, j)
        local h = redis.call('ZRANGE', KEYS[j], 0, 0, 'WITHSCORES')
        if h[2] and (not oldest or tonumber(h[2]) < oldest) then
            oldest, w, account = tonumber(h[2]), j, j == 5 and ARGV[3] or ARGV[6 + (j - 7) / 2]
        end
    end
    head = pop_ticket(w)
else
    head = pop_live_ticket(now, now_s, w)
end
if head and head ~= nx then
    local deadline, fresh = hand_off(head, now, tonumber(ARGV[4]), ARGV[2], account, 1, ARGV[5],
                                     opened)
    drop()
    if fresh or mine < deadline then
        -- The hold outlasts the lease given back (or the fence is new):
        -- its keys' TTL is read. Otherwise whoever wrote that lease's
        -- deadline kept the keys past it (keep_keys), so past the hold's.
        keep_keys(now, deadline, KEYS[1], fresh, 1, w)
    end
    if not nx then
        return 1
    end
    -- The next ask's ticket, queued above, is kept by its queue's own TTL:
    -- a queue and the login's keys do not always share one (keep_keys).
    keep_keys(now, now + ticket_ttl(), KEYS[5], false, 1, 5)
    return deny_next('full', live + 1, false, math.min(soonest or deadline, deadline))
elseif nx then
    -- Nobody older waits: the slot is the next ask's lease, as acquire.lua
    -- grants it (pop_ticket took its ticket out of the queue).
    local fence, fresh = next_fence(now, 1, opened)
    local deadline = now + tonumber(ARGV[nb + 2])
    redis.call('HSET', KEYS[2], nx, holder_json(ARGV[nb + 3], ARGV[nb + 4], now, fence))
    redis.call('ZADD', KEYS[1], fmt('%d', deadline), nx)
    drop()
    keep_keys(now, deadline, KEYS[1], fresh, 1, 5)
    return {1, fence, deadline, live + 1, limit, 1, 1}
end
drop()
return 1
