-- prelude.lua - the rules every script shares, written once. Not a script of
-- its own: the build (cmake/embed_lua.cmake) puts it in front of each
-- lua/*.lua and writes the result to <build>/lua/<name>.lua, which is the
-- text Redis runs (and what `redis-cli --eval` takes). It only defines
-- things: it calls nothing, so a script pays only for what it uses.
--
-- A login's keys come in one order in every lease script (acquire, renew,
-- release; src/lease_script.c builds them), at a base index b, and an
-- account's waiting tickets at an index w:
--   KEYS[b]   <login>leases        ZSET   lease id -> deadline (ms, Redis time)
--   KEYS[b+1] <login>holders       HASH   lease id -> {"node","stream","since_ms","fence"}
--   KEYS[b+2] <login>conf          HASH   max_streams, name, updated_ms, ...
--   KEYS[b+3] <login>fence         STRING grant counter (fencing token)
--   KEYS[w]   <account>waiters     ZSET   ticket -> arrival (ms, to the us)
--   KEYS[w+1] <account>waiters:exp ZSET   ticket -> expiry (ms)
-- The first login is always at b = 1 and its account's tickets at w = 5:
-- for an account with one login these are the six keys sfl:{a:<id>}:leases,
-- holders, conf, fence, waiters, waiters:exp (src/routes.h says where the
-- keys of other logins are).
-- The lease scripts take the namespace's epoch marker as their last key,
-- KEYS[#KEYS] (epoch.lua says what it is; epoch_window below).
local fmt = string.format -- numbers go to Redis as '%d': tostring's '%.14g' costs more
local KEEP_MS = 10000     -- idle keys outlive the last deadline or ticket by this much
local SLACK_MS = 500      -- ... plus up to this, so that most calls need not touch TTLs

-- Redis time in ms (time comes only from TIME), and TIME's own answer.
local function redis_now()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t
end

-- The conf a node knew, written back when Redis has none (a new account,
-- or Redis lost its data: then the epoch is gone too, and epoch_window
-- opens the recovery window). The limit, or nil when the node knew none.
local function restore_conf(now, known, b)
    known = tonumber(known)
    if known == nil or known < 0 then
        return nil
    end
    redis.call('HSET', KEYS[b + 2], 'max_streams', known, 'updated_ms', now)
    return known
end

-- Which Redis process answers, and its replication history: INFO's run_id
-- (new with every start), master_replid (new with a start, and when a
-- replica is promoted) and master_replid2 (a promoted replica's: the
-- replication id of the master it followed).
local function redis_identity()
    local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
    local repl = redis.call('INFO', 'replication')
    return run_id, string.match(repl, 'master_replid:(%x+)') or '',
           string.match(repl, 'master_replid2:(%x+)') or ''
end

-- Writes the epoch marker at key as made now: its window open until
-- until_ms for reason, the Redis process that answers as its confirmer, and
-- ttl (the longest lease TTL known, 0 if none). Shared by epoch_window and
-- epoch.lua, the marker's two makers.
local function make_epoch(key, now, until_ms, reason, ttl)
    local run_id, replid = redis_identity()
    redis.call('HSET', key, 'created_ms', now, 'opened_ms', now, 'recover_until_ms', until_ms,
               'reason', reason, 'run_id', run_id, 'replid', replid, 'ttl_ms', ttl)
end

-- Until when (ms, Redis time) only leases that already existed may be
-- re-taken: the namespace's recovery window, from its epoch marker
-- (KEYS[#KEYS]); and, second, when that window last opened (nil: not
-- known), for next_fence. A missing marker means this Redis holds none of
-- the data sfl wrote (new, flushed, or restarted without persistence): it
-- is made here, and the window opens for window_ms, once for every account
-- (window_ms nil: not made here, and the window counts as open).
-- lua/epoch.lua (run by every connection first) says more.
local function epoch_window(now, window_ms)
    local e = redis.call('HMGET', KEYS[#KEYS], 'created_ms', 'recover_until_ms', 'opened_ms')
    if e[1] then
        return tonumber(e[2]) or 0, tonumber(e[3])
    elseif window_ms == nil then
        return math.huge, nil
    end
    local until_ms = now + (tonumber(window_ms) or 0)
    make_epoch(KEYS[#KEYS], now, until_ms, 'missing', tonumber(window_ms) or 0)
    return until_ms, now
end

-- A login's effective limit: its max_streams, capped by what its panel
-- says (panel_max, from xtream.c; 0 or absent: no cap) and by what refusals
-- taught (learned_limit, learn.lua; absent: none); never above max_streams.
-- nil when limit is nil; 0 = unlimited.
local function effective_limit(limit, panel, learned)
    if limit == nil then
        return nil
    end
    for _, cap in ipairs({tonumber(panel) or 0, tonumber(learned) or 0}) do
        if cap > 0 and (limit == 0 or cap < limit) then
            limit = cap
        end
    end
    return limit
end

-- The next fencing token of the login at b; true as second value if the
-- counter was written whole (SET: its key has no TTL now, keep_keys must be
-- forced). A login's tokens only grow. A token is at most the Redis time of
-- its grant (a counter starts at that time and gains one a grant, and a
-- login averages far below a grant a millisecond), so:
--   - a counter that expired with its idle login starts again above every
--     token it gave, at now;
--   - a counter at or below `opened`, when the epoch window last opened
--     (epoch_window's second value: a Redis that may have lost its last
--     writes, restarted or failed over), goes on above it: the grants lost
--     with those writes gave tokens no later than that, which this Redis
--     never counted. (Two Redis hosts' clocks must differ by less than the
--     time from the failover to the first connection that finds it.)
local function next_fence(now, b, opened)
    local f = redis.call('INCR', KEYS[b + 3])
    local floor = f == 1 and now - 1 or opened
    if floor and f <= floor then
        f = floor + 1
        redis.call('SET', KEYS[b + 3], fmt('%d', f))
        return f, true
    end
    return f, false
end

-- A JSON string: s quoted as it is when nothing in it needs escaping (what
-- cjson.encode gives then too), else cjson.encode's.
local function json_str(s)
    if string.find(s, '[%c"\\/\128-\255]') then
        return cjson.encode(s)
    end
    return '"' .. s .. '"'
end

local function holder_json(node, stream, now, fence)
    return fmt('{"node":%s,"stream":%s,"since_ms":%d,"fence":%d}', json_str(node),
               json_str(stream), now, fence)
end

-- Idle keys expire KEEP_MS after the last deadline and the last ticket
-- expiry; conf stays. The login at b and the tickets at w (nil: none) are
-- kept together. `last` is the latest time this call wrote into a key
-- whose TTL pttl_key tells. The TTL is read, never assumed: whoever wrote
-- the keys before (another version of these scripts too), no key is given
-- an expiry earlier than its data needs; and it is pushed out only when it
-- would fall short, not on every call. (A caller whose write ends no later
-- than a deadline already in the keys need not call: that deadline's
-- writer kept them past it. release.lua's hand-off does so.)
--
-- A key with no TTL was made by this call (Redis deletes a sorted set or
-- hash when it empties; the next write makes it again): a queue whose first
-- ticket this is, a login's leases whose first lease this is. Only that key
-- and its twin (waiters:exp; holders) need one: from the latest expiry
-- (deadline) in the pair, read, as always; the other keys keep theirs. On
-- a login of 1 with one node waiting the queue empties at every hand-off.
-- So a queue and its login's keys may have different TTLs: a call that
-- writes into both keeps each by its own.
local function keep_keys(now, last, pttl_key, force, b, w)
    if not force then
        local left = redis.call('PTTL', pttl_key)
        if left >= 0 and now + left >= last + KEEP_MS then
            return
        end
        -- The key's twin, and the sorted set of the pair's expiries.
        local twin, expiries
        if left == -1 and w and pttl_key == KEYS[w] then
            twin, expiries = KEYS[w + 1], KEYS[w + 1]
        elseif left == -1 and pttl_key == KEYS[b] then
            twin, expiries = KEYS[b + 1], KEYS[b]
        end
        if twin then
            local latest = tonumber(redis.call('ZRANGE', expiries, -1, -1, 'WITHSCORES')[2]) or 0
            local at = fmt('%d', math.max(last, latest) + KEEP_MS + SLACK_MS)
            redis.call('PEXPIREAT', pttl_key, at)
            redis.call('PEXPIREAT', twin, at)
            return
        end
    end
    local l = tonumber(redis.call('ZRANGE', KEYS[b], -1, -1, 'WITHSCORES')[2]) or 0
    local t = w and tonumber(redis.call('ZRANGE', KEYS[w + 1], -1, -1, 'WITHSCORES')[2]) or 0
    local at = fmt('%d', math.max(last, l, t) + KEEP_MS + SLACK_MS)
    redis.call('PEXPIREAT', KEYS[b], at)
    redis.call('PEXPIREAT', KEYS[b + 1], at)
    redis.call('PEXPIREAT', KEYS[b + 3], at)
    if w then
        redis.call('PEXPIREAT', KEYS[w], at)
        redis.call('PEXPIREAT', KEYS[w + 1], at)
    end
end

-- Drops the leases past their deadline (and their holders); how many went.
local function reap_leases(now_s, b)
    local expired = redis.call('ZRANGEBYSCORE', KEYS[b], '-inf', now_s)
    if #expired > 0 then
        redis.call('ZREMRANGEBYSCORE', KEYS[b], '-inf', now_s)
        redis.call('HDEL', KEYS[b + 1], unpack(expired))
    end
    return #expired
end

-- Drops the tickets past their expiry from the queue.
local function reap_tickets(now_s, w)
    local stale = redis.call('ZRANGEBYSCORE', KEYS[w + 1], '-inf', now_s)
    if #stale > 0 then
        redis.call('ZREMRANGEBYSCORE', KEYS[w + 1], '-inf', now_s)
        redis.call('ZREM', KEYS[w], unpack(stale))
    end
end

-- Takes the oldest ticket out of the queue; nil when none is queued. Call
-- reap_tickets first: a dead node's ticket must not get a slot.
local function pop_ticket(w)
    local head = redis.call('ZPOPMIN', KEYS[w])[1]
    if head then
        redis.call('ZREM', KEYS[w + 1], head)
    end
    return head
end

-- A ticket lives at least this long from its arrival: its expiry is its
-- node's ticket ttl from its last ask (src/limiter.c: 3 x fallback_ms +
-- 1000 ms), never less than this (acquire.lua, release.lua), and its
-- arrival is its first.
local TICKET_MIN_MS = 1000

-- pop_ticket with the reaping done only when it can matter: the oldest
-- ticket, if it came less than TICKET_MIN_MS ago, has not expired (nor has
-- any other); if it is older, its expiry is read, and if it is past, the
-- queue is reaped and popped again. One call less than reap_tickets and
-- pop_ticket on the common path. (Tickets queued by older scripts, with a
-- shorter ttl, may be handed a slot after their expiry: a dead node's then
-- keeps it only until the hand-off's hold ends.)
local function pop_live_ticket(now, now_s, w)
    local h = redis.call('ZPOPMIN', KEYS[w])
    local head = h[1]
    if head and math.floor(tonumber(h[2])) + TICKET_MIN_MS <= now then
        local exp = tonumber(redis.call('ZSCORE', KEYS[w + 1], head))
        if exp and exp <= now then
            redis.call('ZREM', KEYS[w + 1], head)
            reap_tickets(now_s, w)
            return pop_ticket(w)
        end
    end
    if head then
        redis.call('ZREM', KEYS[w + 1], head)
    end
    return head
end

-- Hands a free slot of the login at b to ticket: a lease of the ticket held
-- handoff_ms for its node to take over (acquire.lua with the ticket as lease
-- id), and the announcement "<account> <ticket> <deadline_ms> <fence>", with
-- " <login>" when login is given (an account of several logins), on
-- <channel>:<node>, the node being the ticket up to its last ':'. Short, so
-- that a ticket whose node died keeps the slot only briefly. opened: when
-- the epoch window last opened (next_fence). Returns the hold's deadline,
-- and whether the fence counter was written whole.
local function hand_off(ticket, now, handoff_ms, channel, account, b, login, opened)
    local node = string.match(ticket, '^(.*):[^:]*$') or ticket
    local fence, fresh = next_fence(now, b, opened)
    local deadline = now + handoff_ms
    redis.call('ZADD', KEYS[b], fmt('%d', deadline), ticket)
    redis.call('HSET', KEYS[b + 1], ticket, holder_json(node, '', now, fence))
    local msg = fmt('%s %s %d %d', account, ticket, deadline, fence)
    if login and login ~= '' then
        msg = msg .. ' ' .. login
    end
    redis.call('PUBLISH', channel .. ':' .. node, msg)
    return deadline, fresh
end

-------------------------------------------------------------------------------
