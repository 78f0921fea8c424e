package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")

describe("scripts/game.lua (route game:* beside chat.lua)", function()
    local w, opts

    before_each(function()
        w = fake.new()
        opts = {
            script = "scripts/chat.lua",
            routes = { { pattern = "game:*", script = "scripts/game.lua",
                config = { min_players = 2, max_players = 3 } } },
        }
        w:boot(opts)
    end)

    local function send(c, tbl)
        w:send_json(c, tbl)
        return w:take(c)
    end

    local function player(name, room)
        local c = w:connect()
        local r = send(c, { type = "join", room_id = room or "game:1", user_id = name })
        assert.are.equal("joined", r[1].type, r[1].message)
        return c
    end

    local function of_type(frames, t)
        local out = {}
        for _, f in ipairs(frames) do
            if f.type == t then out[#out + 1] = f end
        end
        return out
    end

    it("starts a round when enough players are all ready", function()
        local a, b = player("ann"), player("ben")
        w:take(a)
        local r = send(a, { type = "ready", room_id = "game:1" })
        assert.are.equal(1, #r)
        assert.are.same({ "player_ready", "ann", true, 1, 2 },
            { r[1].type, r[1].player, r[1].ready, r[1].ready_count, r[1].players })
        assert.is_number(r[1].seq)
        assert.are.equal(0, #of_type(w:take(b), "game_start"))

        local out = send(b, { type = "ready", room_id = "game:1" })
        local start = of_type(out, "game_start")[1]
        assert.truthy(start)
        assert.are.same({ "game:1", 1, { "ann", "ben" } }, { start.room_id, start.round, start.players })
        assert.are.equal(1, #of_type(w:take(a), "game_start"))
        assert.are.equal("playing", w.rc.room("game:1"):get("phase"))
    end)

    it("does not start alone, and unready takes a player back", function()
        local a = player("ann")
        assert.are.equal(0, #of_type(send(a, { type = "ready", room_id = "game:1" }), "game_start"))
        local b = player("ben")
        local r = send(b, { type = "unready", room_id = "game:1" })[1]
        assert.are.same({ "player_ready", false, 1 }, { r.type, r.ready, r.ready_count })
        send(a, { type = "unready", room_id = "game:1" })
        send(b, { type = "ready", room_id = "game:1" })
        assert.are.equal("lobby", w.rc.room("game:1"):get("phase") or "lobby")
    end)

    it("reports the game state with players and readiness", function()
        local a, b = player("ann"), player("ben")
        send(a, { type = "ready", room_id = "game:1" })
        w:take(b)
        assert.are.same({ { type = "game_state", room_id = "game:1", phase = "lobby", round = 0, id = 5,
            players = { { name = "ann", ready = true }, { name = "ben", ready = false } } } },
            send(b, { type = "game_state", room_id = "game:1", id = 5 }))
    end)

    it("refuses joins while playing (forbidden_room) and when full (room_full)", function()
        local a, b, c = player("ann"), player("ben"), player("cat")
        local d = w:connect()
        local r = send(d, { type = "join", room_id = "game:1" })[1]
        assert.are.same({ "error", "room_full" }, { r.type, r.code })

        send(c, { type = "leave", room_id = "game:1" })
        send(a, { type = "ready", room_id = "game:1" })
        send(b, { type = "ready", room_id = "game:1" })
        r = send(d, { type = "join", room_id = "game:1" })[1]
        assert.are.same({ "error", "forbidden_room" }, { r.type, r.code })
        assert.matches("game is running", r.message)
        assert.is_false(d:in_room("game:1"))
    end)

    it("ends the game when a player leaves and too few remain", function()
        local a, b = player("ann"), player("ben")
        send(a, { type = "ready", room_id = "game:1" })
        send(b, { type = "ready", room_id = "game:1" })
        w:take(a)
        w:disconnect(b)
        local over = of_type(w:take(a), "game_over")[1]
        assert.are.same({ 1, "not_enough_players" }, { over.round, over.reason })
        assert.are.equal("lobby", w.rc.room("game:1"):get("phase"))
    end)

    it("starts when the only unready player leaves the lobby", function()
        local a, b, c = player("ann"), player("ben"), player("cat")
        send(a, { type = "ready", room_id = "game:1" })
        send(b, { type = "ready", room_id = "game:1" })
        w:take(a)
        send(c, { type = "leave", room_id = "game:1" })
        assert.are.equal(1, #of_type(w:take(a), "game_start"))
    end)

    it("end_game by a player goes back to the lobby for the next round", function()
        local a, b = player("ann"), player("ben")
        send(a, { type = "ready", room_id = "game:1" })
        send(b, { type = "ready", room_id = "game:1" })
        w:take(a)
        local r = send(a, { type = "ready", room_id = "game:1" })
        assert.are.equal(1, #r)
        assert.are.equal("bad_request", r[1].code)
        w:take(b)
        local over = of_type(send(b, { type = "end_game", room_id = "game:1" }), "game_over")[1]
        assert.are.same({ 1, "ended" }, { over.round, over.reason })
        assert.are.equal("bad_request", send(b, { type = "end_game", room_id = "game:1" })[1].code)
        send(a, { type = "ready", room_id = "game:1" })
        local start = of_type(send(b, { type = "ready", room_id = "game:1" }), "game_start")[1]
        assert.are.equal(2, start.round)
    end)

    it("needs membership for its actions", function()
        player("ann")
        local x = w:connect()
        local r = send(x, { type = "ready", room_id = "game:1" })[1]
        assert.are.same({ "error", "not_member" }, { r.type, r.code })
    end)

    it("only applies to game:* rooms; chat still handles everything else there", function()
        local a = player("ann", "lobby")
        assert.are.equal("unknown_type", send(a, { type = "ready", room_id = "lobby" })[1].code)
        local g = player("gus")
        local b = send(g, { type = "broadcast", room_id = "game:1", content = "gl hf" })[1]
        assert.are.same({ "broadcast", "gl hf" }, { b.type, b.content })
        -- four players may join a non-game room
        player("b", "lobby"); player("c", "lobby"); player("d", "lobby")
        assert.are.equal(4, w.rc.room("lobby"):count())
    end)

    it("keeps lobbies across a reload (state is in room.data)", function()
        local a, b = player("ann"), player("ben")
        send(a, { type = "ready", room_id = "game:1" })
        w:reload(opts)
        local start = of_type(send(b, { type = "ready", room_id = "game:1" }), "game_start")[1]
        assert.truthy(start)
    end)
end)
