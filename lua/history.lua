-- history.lua - merges one process's per-minute figures for a login into
-- the hour's hash (history format v1: README "History", src/history.h).
--
-- KEYS: 1 <ns>:history:<login>:<YYYYMMDDHH>  HASH  minute "0".."59" -> csv
-- ARGV: 1 PEXPIREAT of the key, ms (end of the hour + retention)
--       2.. pairs: minute ("0".."59"), csv of integers (positions 0..33)
-- returns: the number of minutes written
--
-- A process sends the same minute again with every flush (deltas): "sum"
-- positions add, "max" positions keep the larger (peak 1, limit 3,
-- others_peak 4, waiting_peak 7). Positions 0..3 are always written;
-- trailing zeros after them are left out (a missing position reads 0).
-- A pair that is not a minute and a csv of integers is an error, and
-- nothing of the call is written.
--
-- Built with prelude.lua in front (it only defines things).
local NPOS = 34
local IS_MAX = {[2] = true, [4] = true, [5] = true, [8] = true} -- 1-based: positions 1, 3, 4, 7

-- The integers of csv into a table (1-based), or nil when it is not
-- 1..NPOS comma-separated integers.
local function parse(csv)
    local v = {}
    for part in string.gmatch(csv .. ',', '([^,]*),') do
        local n = string.match(part, '^%-?%d+$') and tonumber(part)
        if n == nil or #v >= NPOS then
            return nil
        end
        v[#v + 1] = n
    end
    return #v > 0 and v or nil
end

local pairs_in = {}
for a = 2, #ARGV, 2 do
    local minute = tonumber(ARGV[a])
    local csv = ARGV[a + 1]
    if minute == nil or minute < 0 or minute > 59 or minute ~= math.floor(minute) then
        return redis.error_reply('history.lua: ARGV[' .. a .. ']: not a minute 0..59')
    end
    local v = csv and parse(csv)
    if v == nil then
        return redis.error_reply('history.lua: bad csv at ARGV[' .. (a + 1) .. ']')
    end
    pairs_in[#pairs_in + 1] = {fmt('%d', minute), v}
end

local written = 0
for _, p in ipairs(pairs_in) do
    local field, add = p[1], p[2]
    local old = redis.call('HGET', KEYS[1], field)
    local cur = old and parse(old) or {}
    local out, last = {}, 4
    for i = 1, NPOS do
        local a, b = cur[i], add[i]
        local v
        if a == nil then
            v = b or 0
        elseif b == nil then
            v = a
        elseif IS_MAX[i] then
            v = math.max(a, b)
        else
            v = a + b
        end
        out[i] = fmt('%d', v)
        if v ~= 0 and i > last then
            last = i
        end
    end
    redis.call('HSET', KEYS[1], field, table.concat(out, ',', 1, last))
    written = written + 1
end
if written > 0 then
    redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return written
