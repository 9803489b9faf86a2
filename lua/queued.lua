-- queued.lua - one page of the shared queue, read for one batch: the stream
-- ids of the batch's entries that a node will still check. Such an entry is
-- either not yet delivered (after the group's last delivered id, or there
-- is no group yet: a node creates it from the stream's start) or delivered
-- and pending (a node has it, or XAUTOCLAIM gives it to one once it is
-- idle). An entry delivered and no longer pending (acknowledged but not
-- deleted) is not counted: no node will ever read it again.
--
-- `sflimit submit --wait` reads the whole queue this way, page by page, on a
-- reconnect (cmd_submit.c), to find the streams of its batch that Redis lost
-- the entry of (a lossy failover, a restart from an older snapshot) while
-- the batch survived. A page is a bounded piece of work, so a long queue
-- never holds Redis up for long. Reads only.
--
-- KEYS: 1 sfl:jobs  STREAM the shared queue
-- ARGV: 1 the queue's consumer group (sfl-nodes)
--       2 the batch id
--       3 where the page starts: '-', or '(' .. the last entry id of the
--         page before
--       4 entries per page
-- returns: {next, stream id...}: next is the id of the page's last entry,
--          '' when the queue holds no more; then the stream ids (integers)
--          of the batch's entries a node will still check, in queue order.
--
-- Built with prelude.lua in front.
local out = {''}
if redis.call('EXISTS', KEYS[1]) == 0 then
    return out
end
local page = tonumber(ARGV[4])
local entries = redis.call('XRANGE', KEYS[1], ARGV[3], '+', 'COUNT', page)
if #entries == page then
    out[1] = entries[#entries][1]
end

-- The value of name in a flat {name, value, ...} list (an XINFO group, an
-- entry's fields); nil if it is not there.
local function field(flat, name)
    for i = 1, #flat - 1, 2 do
        if flat[i] == name then
            return flat[i + 1]
        end
    end
    return nil
end

-- The group's last delivered id, as {ms, seq}; nil when there is no group.
local last
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local id = field(g, 'name') == ARGV[1] and field(g, 'last-delivered-id')
    if id then
        local ms, seq = string.match(id, '^(%d+)-(%d+)$')
        last = {tonumber(ms), tonumber(seq)}
    end
end

local function delivered(id)
    if not last then
        return false
    end
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    ms, seq = tonumber(ms), tonumber(seq)
    return ms < last[1] or (ms == last[1] and seq <= last[2])
end

for _, e in ipairs(entries) do
    local batch, stream = field(e[2], 'batch'), field(e[2], 'stream')
    if batch == ARGV[2] and stream then
        local ok, s = pcall(cjson.decode, stream)
        if ok and type(s) == 'table' and type(s.id) == 'number' and
            (not delivered(e[1]) or
                #redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1) > 0) then
            out[#out + 1] = s.id
        end
    end
end
return out
