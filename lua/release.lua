-- release.lua - give a lease back. Idempotent: releasing twice, or a lease
-- that already expired, changes nothing and announces nothing.
--
-- KEYS: 1 sfl:{a:<id>}:leases   ZSET
--       2 sfl:{a:<id>}:holders  HASH
-- ARGV: 1 lease id
--       2 channel for the announcement (sfl:released)
--       3 account id (the message)
-- returns: 1 if the lease was held and is now removed, 0 if it was not held
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('PUBLISH', ARGV[2], ARGV[3])
    return 1
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
