-- scripts/chat.lua: the default protocol (DESIGN.md "Default protocol").
--
-- One JSON object per text frame; `id` (string up to 128 bytes, or number)
-- is optional and echoed in the reply.
--
--   {"type":"auth","token":"..."}          handled by plugins/jwt_auth when enabled
--   {"type":"join","room_id":"lobby","user_id":"alice"}
--        -> {"type":"joined","room_id":"lobby","seq":41,"epoch":"k3x9"}   (+ "id" after room_id)
--           seq: the room's last seq; epoch: changes only when the room's history was
--           lost or reset (a crash, a wiped store): seqs of another epoch mean nothing.
--           Then the live broadcasts from seq + 1 (the member is held while seq is read).
--   {"type":"join","room_id":"lobby","since":41,"epoch":"k3x9"}   (recovery; epoch optional)
--        -> {"type":"joined","room_id":"lobby","seq":45,"epoch":"k3x9","recovered":true}
--           then every stored broadcast with since < seq <= 45, in order, as it was
--           broadcast (at most recover_max, default 1000). "recovered":false (and no
--           replay) when the epoch differs, more than recover_max were missed, or the
--           store cannot answer: refetch with history.
--           One stream: `joined`, the replay, then live broadcasts from the next
--           seq on; none missing, none twice. The membership starts first and the
--           room's broadcasts are held for this member while the store is read
--           (conn:join with hold, conn:release); more than recover_hold of them
--           (default 4096) make it "recovered":false. recovered:false: `joined`,
--           then live broadcasts from joined's seq + 1.
--   {"type":"leave","room_id":"lobby"}    -> {"type":"left","room_id":"lobby"}
--   {"type":"broadcast","room_id":"lobby","content":"hi"}
--        -> every member, sender included:
--           {"type":"broadcast","room_id":"lobby","content":"hi","sender":"alice","seq":7,"ts":...}
--           and, only if the request had an id: {"type":"ack","id":..,"seq":7} once the
--           room took it. When the server refuses publishes on store errors
--           (store_errors = "refuse") a refused broadcast gets error `unavailable`
--           (with the id when one was sent); the handler then waits for the
--           room's answer even without an id, so this connection's next
--           messages run after it. Otherwise a broadcast without an id does not wait.
--   {"type":"direct","to":"bob","content":"psst"}
--        -> bob's connections: {"type":"direct","from":"alice","content":"psst"}
--           (+ {"type":"ack","id":..,"delivered":n} when the request had an id)
--   {"type":"history","room_id":"lobby","since":0,"limit":50}
--   {"type":"history","room_id":"lobby","before":120,"limit":50}   (paging back)
--        -> {"type":"history","room_id":"lobby","seq":130,"epoch":"k3x9",
--            "messages":[{...broadcast, with its seq...}, ...]}
--           oldest first; limit is clamped to 1..1000 (default 50). since: the first
--           `limit` with a greater seq; before: the last `limit` with a smaller seq;
--           neither: the latest `limit`. seq/epoch: the room's, at the read.
--   {"type":"presence","room_id":"lobby"}
--        -> {"type":"presence","room_id":"lobby","users":["alice",...],"count":n}
--           users: distinct user ids; count: connections in the room, with a user
--           id or without (in a cluster: on every node)
--   {"type":"presence","room_id":"lobby","count_only":true}
--        -> {"type":"presence","room_id":"lobby","count":n}: the count alone (in a
--           cluster it costs O(nodes), not O(members): for big rooms)
--
-- Errors: {"type":"error","code":<code>,"message":<text>} (+ "id"), codes from
-- roomcast.errors: bad_json, bad_request, unknown_type, missing_field,
-- invalid_field, not_member, already_member, not_authorized, forbidden_room,
-- not_found, too_big, unavailable (the history store cannot answer), internal.
-- history and presence need membership.
--
-- The sender name is conn.user (set by jwt_auth, or by the first join that
-- carries user_id), else "conn-<id>". A join whose user_id differs from an
-- already set conn.user is refused (invalid_field): no renaming mid-session.
--
-- Config (rc.config / the script's config): max_content_bytes (default 16384),
-- recover_max (default 1000).
--
-- join and history wait for the history store (room:last_seq, room:history):
-- the worker serves others meanwhile, and this connection's next messages
-- run after the reply (lua/API.md "Waiting").

local rc = require("roomcast")
local util = require("roomcast.util")
local E = require("roomcast.errors")
local cjson = require("cjson")

local config = ... or {}

local MAX_ROOM_ID = 128
local MAX_USER_ID = 128
local MAX_CONTENT = tonumber(config.max_content_bytes) or 16384
local HISTORY_MAX = 1000
local HISTORY_DEFAULT = 50
local RECOVER_MAX = tonumber(config.recover_max) or 1000
local HOLD = { hold = true }
if RECOVER_MAX > 999 then RECOVER_MAX = 999 end -- one read of recover_max + 1 (store limit 1000)

local enc = cjson.encode
local type, tostring, floor = type, tostring, math.floor

-- ---------------------------------------------------------------- validation
-- Each check returns the value, or nil, code, message.

local function check_name(msg, field, max, required)
    local v = msg[field]
    if v == nil then
        if required then
            return nil, E.missing_field, field .. " is required"
        end
        return nil
    end
    if type(v) ~= "string" or v == "" then
        return nil, E.invalid_field, field .. " must be a non-empty string"
    end
    if #v > max then
        return nil, E.invalid_field, string.format("%s is %d bytes; the limit is %d", field, #v, max)
    end
    return v
end

local function check_content(msg)
    local v = msg.content
    if v == nil then
        return nil, E.missing_field, "content is required"
    end
    if type(v) ~= "string" then
        return nil, E.invalid_field, "content must be a string"
    end
    if #v > MAX_CONTENT then
        return nil, E.too_big,
            string.format("content is %d bytes; the limit is %d", #v, MAX_CONTENT)
    end
    return v
end

-- optional non-negative integer
local function check_count(msg, field)
    local v = msg[field]
    if v == nil then
        return nil
    end
    if type(v) ~= "number" or v ~= v or v < 0 or v ~= floor(v) or v > 2 ^ 53 then
        return nil, E.invalid_field, field .. " must be a non-negative integer"
    end
    return v
end

local function reply(conn, id, tbl)
    return util.reply(conn, id, tbl)
end

local function id_field(id)
    if id == nil then
        return ""
    end
    return ',"id":' .. enc(id)
end

-- ------------------------------------------------------------------ handlers
-- handler(conn, msg, id) -> nothing on success (it replied), or code, message

local handlers = {}

function handlers.auth()
    -- plugins/jwt_auth answers auth messages itself and stops the chain;
    -- getting here means no auth plugin is enabled.
    return E.not_authorized, "authentication is not enabled on this server"
end

function handlers.join(conn, msg, id)
    local room_id, code, text = check_name(msg, "room_id", MAX_ROOM_ID, true)
    if not room_id then return code, text end
    local user_id
    user_id, code, text = check_name(msg, "user_id", MAX_USER_ID, false)
    if code then return code, text end
    local since
    since, code, text = check_count(msg, "since")
    if code then return code, text end

    if msg.epoch ~= nil and (type(msg.epoch) ~= "string" or #msg.epoch > 64) then
        return E.invalid_field, "epoch must be a string (the one `joined` gave)"
    end

    local current = conn.user
    if user_id and current and current ~= user_id then
        return E.invalid_field, "user_id does not match this connection's user '" .. current .. "'"
    end

    -- The member waits in the room (held: README "Recovery") until its joined
    -- (and replay) are queued, then gets the live messages after them.
    local ok, err, dcode, dtext = conn:join(room_id, HOLD)
    if not ok then
        if err == "already_member" then
            return E.already_member, "already a member of '" .. room_id .. "'"
        elseif err == "denied" then
            return dcode or E.forbidden_room, dtext or ("joining '" .. room_id .. "' is not allowed")
        elseif err == "closed" then
            return
        end
        return E.internal, "join failed: " .. tostring(err)
    end
    if user_id and not current then
        conn.user = user_id
    end

    local room = rc.room(room_id)
    -- Built by hand to keep the seed's key order: {"type":"joined","room_id":...}
    local head = '{"type":"joined","room_id":' .. enc(room_id) .. id_field(id)
    if not since then
        -- held too: `joined` (seq N), then the live broadcasts from N + 1
        local okr, seq, epoch = pcall(room.last_seq, room)
        if not okr then
            conn:release(room_id, 0)
            error(seq, 0)
        end
        if not seq then
            conn:send(head .. '}')
            conn:release(room_id, 0)
            return E.unavailable, "the room's history is unavailable: " .. tostring(epoch)
        end
        conn:send(head .. ',"seq":' .. seq .. ',"epoch":' .. enc(epoch) .. '}')
        conn:release(room_id, seq)
        return
    end
    -- Recovery. The membership above came first, so every broadcast is either
    -- in this read (seq <= info.last_seq) or held for this member since its
    -- join; release hands over the held ones after the last seq sent here.
    local okr, msgs, info = pcall(room.history, room, { since = since, limit = RECOVER_MAX + 1 })
    if not okr then
        conn:release(room_id, 2 ^ 53) -- not waiting forever; what was held is dropped
        error(msgs, 0)
    end
    if not msgs then
        conn:send(head .. ',"recovered":false}')
        conn:release(room_id, 0) -- everything since the join, in order
        return E.unavailable, "the room's history is unavailable: " .. tostring(info)
    end
    -- Recovered: same epoch, the read holds everything after since (no more
    -- than recover_max, and nothing before the first one was trimmed), and
    -- nothing held since the join was dropped (recover_hold).
    local recovered = (msg.epoch == nil or msg.epoch == info.epoch) and since <= info.last_seq
        and #msgs <= RECOVER_MAX
        and (#msgs == 0 and since == info.last_seq or #msgs > 0 and msgs[1].seq == since + 1)
        and conn:hold_intact(room_id) == true
    conn:send(head .. ',"seq":' .. info.last_seq .. ',"epoch":' .. enc(info.epoch) ..
        ',"recovered":' .. tostring(recovered) .. '}')
    local after = info.last_seq
    if recovered then
        for _, e in ipairs(msgs) do
            if e.binary then
                conn:send_binary(e.payload)
            else
                conn:send(e.payload)
            end
        end
        after = #msgs > 0 and msgs[#msgs].seq or since
    end
    conn:release(room_id, after)
end

function handlers.leave(conn, msg, id)
    local room_id, code, text = check_name(msg, "room_id", MAX_ROOM_ID, true)
    if not room_id then return code, text end
    local ok, err = conn:leave(room_id)
    if not ok then
        if err == "not_member" then
            return E.not_member, "not a member of '" .. room_id .. "'"
        elseif err == "closed" then
            return
        end
        return E.internal, "leave failed: " .. tostring(err)
    end
    conn:send('{"type":"left","room_id":' .. enc(room_id) .. id_field(id) .. '}')
end

function handlers.broadcast(conn, msg, id)
    local room_id, code, text = check_name(msg, "room_id", MAX_ROOM_ID, true)
    if not room_id then return code, text end
    local content
    content, code, text = check_content(msg)
    if not content then return code, text end
    if not conn:in_room(room_id) then
        return E.not_member, "join '" .. room_id .. "' before broadcasting to it"
    end
    -- The seed's key order; C splices ,"seq":N,"ts":MS before the final }.
    local payload = '{"type":"broadcast","room_id":' .. enc(room_id) .. ',"content":' ..
        enc(content) .. ',"sender":' .. enc(util.sender(conn)) .. '}'
    -- With an id the client wants an ack: wait for the room's answer, so the
    -- ack carries the seq (or the refusal). Without one, wait only when the
    -- room can refuse (store_errors = "refuse"): every refusal is answered.
    local wait = id ~= nil or rc.store_errors == "refuse"
    local ok, err = rc.room(room_id):publish(payload, { stamp = true, wait = wait })
    if not ok then
        if err == "too_big" then
            return E.too_big, "the message is too big for this room"
        elseif err == "unavailable" then
            return E.unavailable,
                "the room cannot take messages now (history store or cluster bus unavailable)"
        end
        return E.internal, "publish failed: " .. tostring(err)
    end
    if id ~= nil then
        conn:send('{"type":"ack"' .. id_field(id) .. ',"seq":' .. ok .. '}')
    end
end

function handlers.direct(conn, msg, id)
    local to, code, text = check_name(msg, "to", MAX_USER_ID, true)
    if not to then return code, text end
    local content
    content, code, text = check_content(msg)
    if not content then return code, text end
    local payload = '{"type":"direct","from":' .. enc(util.sender(conn)) .. ',"content":' ..
        enc(content) .. '}'
    -- one node: n connections reached; a cluster: n nodes the bus handed it
    -- to ("delivered" = accepted by the bus, README: Running a cluster)
    local n, err = rc.send_to_user(to, payload)
    if not n and err == "unavailable" then
        return E.unavailable, "direct messages are unavailable now (cluster bus down)"
    end
    if not n or n == 0 then
        return E.not_found, "user '" .. to .. "' is not connected"
    end
    if id ~= nil then
        conn:send('{"type":"ack"' .. id_field(id) .. ',"delivered":' .. n .. '}')
    end
end

function handlers.history(conn, msg, id)
    local room_id, code, text = check_name(msg, "room_id", MAX_ROOM_ID, true)
    if not room_id then return code, text end
    local since, limit
    since, code, text = check_count(msg, "since")
    if code then return code, text end
    limit, code, text = check_count(msg, "limit")
    if code then return code, text end
    local before
    before, code, text = check_count(msg, "before")
    if code then return code, text end
    if since and before then
        return E.invalid_field, "give since or before, not both"
    end
    limit = limit or HISTORY_DEFAULT
    if limit < 1 then limit = 1 elseif limit > HISTORY_MAX then limit = HISTORY_MAX end
    if not conn:in_room(room_id) then
        return E.not_member, "join '" .. room_id .. "' to read its history"
    end
    -- since: forward from it; before (or nothing): the newest `limit` below it
    -- The stored broadcasts are JSON object texts already (this script
    -- publishes them): json = true has C splice them into one array (binary
    -- entries and texts that are not objects are skipped), and conn:send
    -- joins head, array and tail into the frame: no table of up to 1000
    -- entries and no 2 MB Lua string on the worker.
    local arr, info = rc.room(room_id):history({ since = since, before = before, limit = limit,
        newest = since == nil, json = true })
    if not arr then
        return E.unavailable, "the room's history is unavailable: " .. tostring(info)
    end
    conn:send('{"type":"history","room_id":' .. enc(room_id) .. id_field(id) .. ',"seq":' ..
        info.last_seq .. ',"epoch":' .. enc(info.epoch) .. ',"messages":', arr, '}')
    arr:free() -- now, not at the next GC cycle: the buffer may hold megabytes
end

function handlers.presence(conn, msg, id)
    local room_id, code, text = check_name(msg, "room_id", MAX_ROOM_ID, true)
    if not room_id then return code, text end
    if not conn:in_room(room_id) then
        return E.not_member, "join '" .. room_id .. "' to see who is there"
    end
    if msg.count_only ~= nil and type(msg.count_only) ~= "boolean" then
        return E.invalid_field, "count_only must be true or false"
    end
    local room = rc.room(room_id)
    if msg.count_only then
        local n, cerr = room:presence_count()
        if not n then
            return E.unavailable, "presence is unavailable now: " .. tostring(cerr)
        end
        reply(conn, id, { type = "presence", room_id = room_id, count = n })
        return
    end
    -- one node: this room's members; a cluster: every node's (the handler
    -- waits for the bus)
    local users, err, count = room:presence()
    if not users then
        return E.unavailable, "presence is unavailable now: " .. tostring(err)
    end
    reply(conn, id, { type = "presence", room_id = room_id,
        users = util.array(users), count = count or room:count() })
end

-- --------------------------------------------------------------------- hooks

local function on_message(conn, data, is_binary, msg)
    if is_binary then
        util.send_error(conn, E.bad_request, "binary frames are not part of this protocol")
        return
    end
    if not msg then
        local ok, v = pcall(cjson.decode, data)
        if not ok then
            util.send_error(conn, E.bad_json, "the message is not valid JSON")
        else
            util.send_error(conn, E.bad_request, "the message must be a JSON object, got " ..
                (v == cjson.null and "null" or type(v)))
        end
        return
    end
    local id = msg.id
    if id == cjson.null then
        id = nil
    end
    if id ~= nil and not util.valid_id(id) then
        util.send_error(conn, E.invalid_field, "id must be a string of at most 128 bytes or a number")
        return
    end
    local t = msg.type
    if t == nil then
        util.send_error(conn, E.bad_request, "the message has no \"type\"", id)
        return
    end
    if type(t) ~= "string" then
        util.send_error(conn, E.bad_request, "\"type\" must be a string", id)
        return
    end
    local h = handlers[t]
    if not h then
        util.send_error(conn, E.unknown_type, "unknown message type '" .. t:sub(1, 64) .. "'", id)
        return
    end
    local code, text = h(conn, msg, id)
    if code then
        util.send_error(conn, code, text, id)
    end
end

-- POST /api/publish (README "HTTP API"): what members get from a backend's
-- publish. body: the request's JSON object ({"room_id", "content"|"data"});
-- sender: the config's api_sender. The broadcast has the shape a member's
-- has, so clients need no second code path; C adds "seq" and "ts".
local function on_api_publish(room, body, sender)
    local head = '{"type":"broadcast","room_id":' .. enc(room.name)
    if body.content ~= nil then
        local content, code, text = check_content(body)
        if not content then return nil, code, text end
        return head .. ',"content":' .. enc(content) .. ',"sender":' .. enc(sender) .. '}'
    end
    if body.data == nil or body.data == cjson.null then
        return nil, E.missing_field, "content (a string) or data (any JSON) is required"
    end
    local data = enc(body.data)
    if #data > MAX_CONTENT then
        return nil, E.too_big, string.format("data is %d bytes; the limit is %d", #data, MAX_CONTENT)
    end
    return head .. ',"data":' .. data .. ',"sender":' .. enc(sender) .. '}'
end

return {
    on_message = on_message,
    on_api_publish = on_api_publish,
}
