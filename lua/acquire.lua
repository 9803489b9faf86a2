-- acquire.lua - take one slot of an account's limit, or queue for one.
--
-- KEYS: 1 sfl:{a:<id>}:leases       ZSET  lease id -> deadline (ms, Redis server time)
--       2 sfl:{a:<id>}:holders      HASH  lease id -> {"node","stream","since_ms","fence"}
--       3 sfl:{a:<id>}:conf         HASH  max_streams, name, updated_ms, epoch_ms, recover_until_ms
--       4 sfl:{a:<id>}:fence        STRING grant counter (fencing token)
--       5 sfl:{a:<id>}:waiters      ZSET  ticket -> arrival (ms), served in that order
--       6 sfl:{a:<id>}:waiters:exp  ZSET  ticket -> expiry (ms); refreshed by every ask
-- ARGV: 1 lease id = the node's ticket while it waits (asking again with the same id
--         is idempotent, and takes over a slot handed to this ticket by release.lua)
--       2 ttl ms
--       3 node id
--       4 stream label (never a URL)
--       5 max_streams the node last knew, -1 if none: restores conf if Redis lost it
--       6 recovery window ms, opened when conf has to be restored
--       7 ticket ttl ms: a denied ask queues its id as a ticket for this long
--         (0: do not queue); also how long a slot handed to a ticket is held
--       8 channel for hand-off announcements (sfl:released; each goes to
--         sfl:released:<node of the ticket>)
--       9 account id
-- returns: {1, fence, deadline_ms, in_use, limit}                granted (or taken over)
--          {0, retry_ms, in_use, limit, "full"|"recovering", position}  denied; position
--                                                  is the ticket's place (1 = next)
--          {-1, "unknown account"}                           no conf and no limit known
--
-- Fairness: while tickets wait, a free slot goes to the oldest live ticket
-- (its lease is made here or in release.lua), never to whoever asks first.
-- Time comes only from TIME. Expired leases and tickets are reaped first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl, ticket_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    redis.call('HDEL', KEYS[2], unpack(expired))
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
    redis.call('ZREM', KEYS[5], unpack(stale))
end

local conf = redis.call('HMGET', KEYS[3], 'max_streams', 'recover_until_ms')
local limit, recover_until = tonumber(conf[1]), tonumber(conf[2]) or 0
if limit == nil then
    -- No conf: a new account, or Redis lost its data while leases may still be
    -- in use. Restore the limit the node knew and wait out one lease TTL, in
    -- which only leases that already existed can be re-taken (renew.lua).
    local known = tonumber(ARGV[5])
    if known == nil or known < 0 then
        return {-1, 'unknown account'}
    end
    limit, recover_until = known, now + tonumber(ARGV[6])
    redis.call('HSET', KEYS[3], 'max_streams', limit, 'updated_ms', now,
               'epoch_ms', now, 'recover_until_ms', recover_until)
end

local function grant_fence()
    local f = redis.call('INCR', KEYS[4])
    if f == 1 then
        -- The counter expired with the idle account: start above any token it gave.
        f = now
        redis.call('SET', KEYS[4], f)
    end
    return f
end

local in_use = redis.call('ZCARD', KEYS[1])
if now >= recover_until then
    -- Free slots go to the oldest tickets first (this ask may be one of them).
    while limit == 0 or in_use < limit do
        local head = redis.call('ZRANGE', KEYS[5], 0, 0)[1]
        if not head then
            break
        end
        redis.call('ZREM', KEYS[5], head)
        redis.call('ZREM', KEYS[6], head)
        if head ~= id then
            -- A slot freed without a release (an expiry, a raised limit): the
            -- oldest ticket gets it, and its node is told.
            local node = string.match(head, '^(.*):[^:]*$') or head
            local hold = ticket_ttl > 0 and ticket_ttl or ttl
            redis.call('ZADD', KEYS[1], now + hold, head)
            redis.call('HSET', KEYS[2], head, cjson.encode({node = node, stream = '',
                                                            since_ms = now, fence = grant_fence()}))
            redis.call('PUBLISH', ARGV[8] .. ':' .. node, ARGV[9] .. ' ' .. head)
            in_use = in_use + 1
        else
            break -- this ask is the oldest: it takes the slot below
        end
    end
end

local current = redis.call('ZSCORE', KEYS[1], id)
local fence
if current then
    -- The same grant asked again (a lost answer), or a slot handed to this
    -- ticket: take it over with this node's ttl and label.
    local holder = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"fence":0}')
    fence = holder.fence
    if holder.stream == '' or holder.stream == nil then
        redis.call('HSET', KEYS[2], id, cjson.encode({node = ARGV[3], stream = ARGV[4],
                                                      since_ms = now, fence = fence}))
    end
else
    local waiting = redis.call('ZCARD', KEYS[5])
    local reason
    if now < recover_until then
        reason = 'recovering'
    elseif limit > 0 and in_use >= limit then
        reason = 'full'
    elseif waiting > 0 and redis.call('ZSCORE', KEYS[5], id) == false then
        reason = 'full' -- others queued first
    end
    if reason then
        local retry
        if reason == 'recovering' then
            retry = recover_until - now
        else
            local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
            retry = first[2] and math.max(1, tonumber(first[2]) - now) or 1
        end
        local position = 0
        if ticket_ttl > 0 then
            redis.call('ZADD', KEYS[5], 'NX', now, id)
            redis.call('ZADD', KEYS[6], now + ticket_ttl, id)
            position = redis.call('ZRANK', KEYS[5], id) + 1
            local keep = ticket_ttl + 10000
            redis.call('PEXPIRE', KEYS[5], keep)
            redis.call('PEXPIRE', KEYS[6], keep)
        end
        return {0, retry, in_use, limit, reason, position}
    end
    fence = grant_fence()
    in_use = in_use + 1
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    redis.call('HSET', KEYS[2], id, cjson.encode({node = ARGV[3], stream = ARGV[4],
                                                  since_ms = now, fence = fence}))
end
local deadline = now + ttl
redis.call('ZADD', KEYS[1], deadline, id)

-- Idle keys go away a little after the last deadline; conf stays.
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
local keep = last - now + 10000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[4], keep)
return {1, fence, deadline, in_use, limit}
