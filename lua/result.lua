-- result.lua - store one stream's result in its batch, once; then
-- acknowledge its queue entry and delete it, in that order and in one step,
-- so that an entry leaves the queue only with its result stored, and a
-- stored result never leaves its entry behind (the entry carries the
-- stream's URL, credentials included).
--
-- KEYS: 1 sfl:batch:<id>          HASH   total, done, created_ms, r:<stream id> = 1 per result
--       2 sfl:batch:<id>:results  LIST   result JSON, in the order they came
--       3 sfl:jobs                STREAM the shared queue
-- ARGV: 1 stream id
--       2 result JSON
--       3 ttl ms of the batch's keys
--       4 channel announcing progress (sfl:batch:<id>)
--       5 the queue's consumer group (sfl-nodes)
--       6 the entry's id in sfl:jobs
-- returns: {stored, done, total, acked}: stored is 0 when this stream already
--          had a result (a queue entry delivered twice): at-least-once
--          delivery, effectively once; acked is XACK's answer (0 when another
--          node acknowledged the entry first). The entry is deleted either way.
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
local acked = redis.call('XACK', KEYS[3], ARGV[5], ARGV[6])
redis.call('XDEL', KEYS[3], ARGV[6])
return {stored, done, total, acked}
