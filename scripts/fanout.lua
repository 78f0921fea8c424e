-- scripts/fanout.lua: the benchmark script. Every connection joins room
-- "bench" as it connects, and every message is published to it verbatim
-- (binary stays binary, no seq/ts stamping), so each message reaches every
-- connection, its sender included.

local rc = require("roomcast")

local ROOM = "bench"
local room = rc.room(ROOM)
local BINARY = { binary = true }

return {
    decode_json = false,

    on_connect = function(conn)
        conn:join(ROOM)
    end,

    -- the hot path: one publish, no decode, no lookups beyond the handle
    on_message = function(_, data, is_binary)
        if is_binary then
            room:publish(data, BINARY)
        else
            room:publish(data)
        end
    end,
}
