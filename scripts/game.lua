-- scripts/game.lua: a game lobby with ready-checks, as a per-room script.
--
-- Meant as a route beside the default protocol:
--
--     script = "scripts/chat.lua",
--     routes = { { pattern = "game:*", script = "scripts/game.lua",
--                  config = { min_players = 2, max_players = 8 } } },
--
-- chat.lua still handles join/leave/broadcast/history/presence in game rooms;
-- this script adds, for rooms named game:*:
--
--   {"type":"ready","room_id":"game:1"}     mark yourself ready
--   {"type":"unready","room_id":"game:1"}
--   {"type":"end_game","room_id":"game:1"}  any player ends the running game
--   {"type":"game_state","room_id":"game:1"}
--        -> {"type":"game_state","room_id":..,"phase":"lobby"|"playing","round":n,
--            "players":[{"name":..,"ready":bool}, ...]}
--
-- Room events, published (stamped with seq/ts) to every member:
--   {"type":"player_ready","room_id":..,"player":..,"ready":bool,"ready_count":k,"players":n}
--   {"type":"game_start","room_id":..,"round":n,"players":[names]}
--       when at least min_players are in the room and all of them are ready
--   {"type":"game_over","room_id":..,"round":n,"reason":"ended"|"not_enough_players"}
--
-- Joining is refused while a game runs (forbidden_room) or when the room has
-- max_players members (room_full).
--
-- All state lives in room.data (C-owned), so a reload keeps every lobby:
--   phase  "lobby" | "playing"      round  last round number
--   ready  JSON object {"<conn id>": true} of ready members (lobby only)

local rc = require("roomcast")
local util = require("roomcast.util")
local E = require("roomcast.errors")
local cjson = require("cjson")

local config = ... or {}
local MIN_PLAYERS = tonumber(config.min_players) or 2
local MAX_PLAYERS = tonumber(config.max_players) or 8

local function phase(room)
    return room:get("phase") or "lobby"
end

local function round(room)
    return tonumber(room:get("round")) or 0
end

local function ready_set(room)
    local s = room:get("ready")
    local ok, t = pcall(cjson.decode, s or "{}")
    return ok and type(t) == "table" and t or {}
end

local function save_ready(room, set)
    if next(set) == nil then
        room:set("ready", nil)
    else
        room:set("ready", cjson.encode(set))
    end
end

local function publish(room, tbl)
    tbl.room_id = room.name
    return room:publish(util.encode(tbl), { stamp = true })
end

local function member_names(room)
    local names = util.array()
    for _, id in ipairs(room:members()) do
        names[#names + 1] = util.sender(rc.conn(id))
    end
    return names
end

-- Start when enough members are present and every one of them is ready.
local function maybe_start(room)
    if phase(room) ~= "lobby" then
        return
    end
    local members = room:members()
    if #members < MIN_PLAYERS then
        return
    end
    local set = ready_set(room)
    for _, id in ipairs(members) do
        if not set[tostring(id)] then
            return
        end
    end
    local n = round(room) + 1
    room:set("phase", "playing")
    room:set("round", tostring(n))
    save_ready(room, {})
    publish(room, { type = "game_start", round = n, players = member_names(room) })
end

local function end_game(room, reason)
    room:set("phase", "lobby")
    save_ready(room, {})
    publish(room, { type = "game_over", round = round(room), reason = reason })
end

local function set_ready(conn, room, on)
    if phase(room) ~= "lobby" then
        return false, E.bad_request, "a game is running in '" .. room.name .. "'"
    end
    local set = ready_set(room)
    set[tostring(conn.id)] = on or nil
    save_ready(room, set)
    local k = 0
    for _ in pairs(set) do k = k + 1 end
    publish(room, { type = "player_ready", player = util.sender(conn), ready = on,
        ready_count = k, players = room:count() })
    maybe_start(room)
    return false -- handled
end

local actions = {}

function actions.ready(conn, room)
    return set_ready(conn, room, true)
end

function actions.unready(conn, room)
    return set_ready(conn, room, false)
end

function actions.end_game(_, room)
    if phase(room) ~= "playing" then
        return false, E.bad_request, "no game is running in '" .. room.name .. "'"
    end
    end_game(room, "ended")
    return false
end

function actions.game_state(conn, room, msg)
    local set = ready_set(room)
    local players = util.array()
    for _, id in ipairs(room:members()) do
        players[#players + 1] = { name = util.sender(rc.conn(id)), ready = set[tostring(id)] == true }
    end
    local id = msg.id
    util.reply(conn, util.valid_id(id) and id or nil, { type = "game_state", room_id = room.name,
        phase = phase(room), round = round(room), players = players })
    return false
end

return {
    -- boot only sends messages whose room_id matches this route's pattern
    on_message = function(conn, _, _, msg)
        local action = actions[msg.type]
        if not action then
            return -- not ours: chat.lua handles it
        end
        if not conn:in_room(msg.room_id) then
            return false, E.not_member, "join '" .. msg.room_id .. "' first"
        end
        return action(conn, rc.room(msg.room_id), msg)
    end,

    on_join = function(_, room)
        if phase(room) == "playing" then
            return false, E.forbidden_room, "a game is running in '" .. room.name .. "'; try later"
        end
        if room:count() >= MAX_PLAYERS then
            return false, E.room_full, "'" .. room.name .. "' already has " .. MAX_PLAYERS .. " players"
        end
        return true
    end,

    -- runs after the membership is gone (explicit leave or disconnect)
    on_leave = function(conn, room)
        if phase(room) == "playing" then
            if room:count() < MIN_PLAYERS then
                end_game(room, "not_enough_players")
            end
            return
        end
        local set = ready_set(room)
        if set[tostring(conn.id)] then
            set[tostring(conn.id)] = nil
            save_ready(room, set)
        end
        -- the ones left may now all be ready
        maybe_start(room)
    end,
}
