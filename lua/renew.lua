-- renew.lua - extend a held lease; if Redis no longer has it, re-take it only
-- where the account has room.
--
-- KEYS: 1 sfl:{a:<id>}:leases   ZSET  lease id -> deadline (ms, Redis server time)
--       2 sfl:{a:<id>}:holders  HASH  lease id -> holder JSON
--       3 sfl:{a:<id>}:conf     HASH  max_streams, recover_until_ms, ...
--       4 sfl:{a:<id>}:fence    STRING grant counter
-- ARGV: 1 lease id
--       2 ttl ms
--       3 node id
--       4 stream label
--       5 max_streams the node last knew, -1 if none (restores a lost conf)
--       6 recovery window ms, opened when conf has to be restored
-- returns: {1, fence, deadline_ms, in_use, limit}  renewed
--          {2, fence, deadline_ms, in_use, limit}  re-taken: the lease had gone (expired,
--                                                  or Redis lost it) and there was room;
--                                                  a new fence
--          {0, reason, in_use, limit}              lost: gone and no room ("full"),
--                                                  or no limit known ("unknown account")
--
-- A re-take is allowed inside a recovery window: that window exists exactly so
-- the leases of checks still running can come back before anyone new gets in.
-- A lease still live is only extended: nothing else needs reading.
local KEEP_MS = 10000  -- as in acquire.lua: idle keys outlive their data by this
local SLACK_MS = 500

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
local fmt = string.format -- numbers go to Redis as '%d': tostring's '%.14g' costs more
local now_s = fmt('%d', now)

local limit = tonumber(redis.call('HGET', KEYS[3], 'max_streams'))
if limit == nil then
    local known = tonumber(ARGV[5])
    if known == nil or known < 0 then
        return {0, 'unknown account', redis.call('ZCARD', KEYS[1]), -1}
    end
    limit = known
    redis.call('HSET', KEYS[3], 'max_streams', limit, 'updated_ms', now,
               'epoch_ms', now, 'recover_until_ms', now + tonumber(ARGV[6]))
end

local status, fence, fresh = 1, nil, false
local current = tonumber(redis.call('ZSCORE', KEYS[1], id))
if current and current > now then
    fence = cjson.decode(redis.call('HGET', KEYS[2], id) or '{}').fence or 0
else
    local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_s)
    if #expired > 0 then
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
        redis.call('HDEL', KEYS[2], unpack(expired))
    end
    local held = redis.call('ZCARD', KEYS[1])
    if limit > 0 and held >= limit then
        return {0, 'full', held, limit}
    end
    status = 2
    fence = redis.call('INCR', KEYS[4])
    if fence == 1 then
        fence, fresh = now, true
        redis.call('SET', KEYS[4], now_s)
    end
    redis.call('HSET', KEYS[2], id, fmt('{"node":%s,"stream":%s,"since_ms":%d,"fence":%d}',
                                        cjson.encode(ARGV[3]), cjson.encode(ARGV[4]), now, fence))
end
local deadline = now + ttl
redis.call('ZADD', KEYS[1], fmt('%d', deadline), id)
local in_use = redis.call('ZCOUNT', KEYS[1], '(' .. now_s, '+inf')

-- Key expiry, as acquire.lua's keep_keys: read, and pushed out only when short.
local left = redis.call('PTTL', KEYS[1])
if fresh or left < 0 or now + left < deadline + KEEP_MS then
    local l = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) or 0
    local at = math.max(deadline, l) + KEEP_MS + SLACK_MS
    for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do
        redis.call('PEXPIREAT', k, fmt('%d', at))
    end
end
return {status, fence, deadline, in_use, limit}
