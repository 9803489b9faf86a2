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
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    redis.call('HDEL', KEYS[2], unpack(expired))
end

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

local in_use = redis.call('ZCARD', KEYS[1])
local status, fence
if redis.call('ZSCORE', KEYS[1], id) then
    status = 1
    fence = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"fence":0}').fence
else
    if limit > 0 and in_use >= limit then
        return {0, 'full', in_use, limit}
    end
    status = 2
    fence = redis.call('INCR', KEYS[4])
    if fence == 1 then
        fence = now
        redis.call('SET', KEYS[4], fence)
    end
    in_use = in_use + 1
    redis.call('HSET', KEYS[2], id, cjson.encode({node = ARGV[3], stream = ARGV[4],
                                                  since_ms = now, fence = fence}))
end
local deadline = now + ttl
redis.call('ZADD', KEYS[1], deadline, id)

local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
local keep = last - now + 10000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[4], keep)
return {status, fence, deadline, in_use, limit}
