-- result.lua - store one stream's result in its batch, once.
--
-- KEYS: 1 sfl:batch:<id>          HASH  total, done, created_ms, r:<stream id> = 1 per result
--       2 sfl:batch:<id>:results  LIST  result JSON, in the order they came
-- ARGV: 1 stream id
--       2 result JSON
--       3 ttl ms of the batch's keys
--       4 channel announcing progress (sfl:batch:<id>)
-- returns: {stored, done, total}: stored is 0 when this stream already had a
--          result (a queue entry delivered twice): at-least-once delivery,
--          effectively once
--
-- Built with prelude.lua in front.
local stored = 0
if redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], 1) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'done', 1)
    stored = 1
end
local done = tonumber(redis.call('HGET', KEYS[1], 'done')) or 0
local total = tonumber(redis.call('HGET', KEYS[1], 'total')) or -1
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if stored == 1 then
    redis.call('PUBLISH', ARGV[4], done)
end
return {stored, done, total}
