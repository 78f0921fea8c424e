package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")
local cjson = require("cjson")

describe("scripts/chat.lua", function()
    local w

    local function boot(config)
        w = fake.new({ config = config })
        w:boot({ script = "scripts/chat.lua", config = config })
    end

    local function send(c, tbl)
        w:send_json(c, tbl)
        return w:take(c)
    end

    local function one(c, tbl)
        local out = send(c, tbl)
        assert.are.equal(1, #out, "expected one reply, got " .. cjson.encode(out))
        return out[1]
    end

    local function expect_error(c, tbl, code, pattern)
        local r = one(c, tbl)
        assert.are.equal("error", r.type)
        assert.are.equal(code, r.code, r.message)
        assert.is_string(r.message)
        if pattern then
            assert.matches(pattern, r.message)
        end
        return r
    end

    before_each(function()
        boot()
    end)

    describe("seed protocol, verbatim", function()
        it("join answers {\"type\":\"joined\",\"room_id\":\"game_lobby\"} + the room's seq and epoch", function()
            local c = w:connect()
            w:send(c, '{"type":"join","room_id":"game_lobby","user_id":"alice123"}')
            assert.are.same({ { data = '{"type":"joined","room_id":"game_lobby","seq":0,'
                .. '"epoch":"ep-game_lobby"}', binary = false } }, w:raw(c))
            assert.are.equal("alice123", c.user)
        end)

        it("broadcast reaches every member, sender included, with seq and ts", function()
            local alice, bob, carol = w:connect(), w:connect(), w:connect()
            w:send(alice, '{"type":"join","room_id":"game_lobby","user_id":"alice123"}')
            w:send(bob, '{"type":"join","room_id":"game_lobby","user_id":"bob"}')
            w:raw(alice); w:raw(bob)
            w:send(alice, '{"type":"broadcast","room_id":"game_lobby","content":"Hello everyone!"}')
            local want = string.format('{"type":"broadcast","room_id":"game_lobby","content":'
                .. '"Hello everyone!","sender":"alice123","seq":1,"ts":%d}', w.clock)
            assert.are.same({ { data = want, binary = false } }, w:raw(alice))
            assert.are.same({ { data = want, binary = false } }, w:raw(bob))
            assert.are.same({}, w:raw(carol)) -- not a member
            w:send(bob, '{"type":"broadcast","room_id":"game_lobby","content":"hi"}')
            assert.are.equal(2, w:take(alice)[1].seq)
        end)
    end)

    describe("framing errors", function()
        it("bad_json for text that is not JSON", function()
            local c = w:connect()
            w:send(c, "{not json")
            local r = w:take(c)[1]
            assert.are.same({ "error", "bad_json" }, { r.type, r.code })
            w:send(c, "hello")
            assert.are.equal("bad_json", w:take(c)[1].code)
        end)

        it("bad_request for JSON that is not an object", function()
            local c = w:connect()
            for _, s in ipairs({ "[1,2]", '"x"', "42", "null" }) do
                w:send(c, s)
                local r = w:take(c)[1]
                assert.are.equal("bad_request", r.code, s)
            end
        end)

        it("bad_request for binary frames", function()
            local c = w:connect()
            w:send(c, '{"type":"join","room_id":"a"}', true)
            local r = w:take(c)[1]
            assert.are.equal("bad_request", r.code)
            assert.matches("binary", r.message)
        end)

        it("bad_request for a missing or non-string type, echoing id", function()
            local c = w:connect()
            local r = expect_error(c, { room_id = "a", id = "q1" }, "bad_request", "type")
            assert.are.equal("q1", r.id)
            expect_error(c, { type = 5 }, "bad_request", "type")
        end)

        it("unknown_type names the type", function()
            local c = w:connect()
            local r = expect_error(c, { type = "dance", id = 9 }, "unknown_type", "dance")
            assert.are.equal(9, r.id)
        end)

        it("invalid_field for an id that cannot be echoed", function()
            local c = w:connect()
            local r = expect_error(c, { type = "join", room_id = "a", id = { 1 } }, "invalid_field", "id")
            assert.is_nil(r.id)
            expect_error(c, { type = "join", room_id = "a", id = string.rep("x", 129) }, "invalid_field")
            assert.is_false(c:in_room("a"))
            w:send(c, '{"type":"join","room_id":"a","id":null}') -- null is no id
            assert.are.same({ { type = "joined", room_id = "a", seq = 0, epoch = "ep-a" } }, w:take(c))
        end)
    end)

    describe("auth", function()
        it("is not_authorized without the jwt_auth plugin", function()
            local c = w:connect()
            local r = expect_error(c, { type = "auth", token = "x", id = 1 }, "not_authorized", "not enabled")
            assert.are.equal(1, r.id)
        end)
    end)

    describe("join", function()
        it("echoes id and keeps conn.user once set", function()
            local c = w:connect()
            assert.are.same({ type = "joined", room_id = "r", id = "j1", seq = 0, epoch = "ep-r" },
                one(c, { type = "join", room_id = "r", user_id = "alice", id = "j1" }))
            assert.are.same({ type = "joined", room_id = "r2", seq = 0, epoch = "ep-r2" },
                one(c, { type = "join", room_id = "r2" }))
            assert.are.equal("alice", c.user)
        end)

        it("user_id is optional: the connection stays anonymous", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r" })
            assert.is_nil(c.user)
            one(c, { type = "broadcast", room_id = "r", content = "x" })
            one(c, { type = "join", room_id = "r2", user_id = "late" })
            assert.are.equal("late", c.user)
        end)

        it("refuses a user_id that differs from conn.user", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r", user_id = "alice" })
            expect_error(c, { type = "join", room_id = "r2", user_id = "mallory" }, "invalid_field", "alice")
            assert.is_false(c:in_room("r2"))
            assert.are.equal("alice", c.user)
        end)

        it("missing_field and invalid_field for room_id", function()
            local c = w:connect()
            expect_error(c, { type = "join" }, "missing_field", "room_id")
            expect_error(c, { type = "join", room_id = 5 }, "invalid_field", "room_id")
            expect_error(c, { type = "join", room_id = "" }, "invalid_field", "room_id")
            expect_error(c, { type = "join", room_id = cjson.null }, "invalid_field", "room_id")
            expect_error(c, { type = "join", room_id = string.rep("r", 129) }, "invalid_field", "128")
            assert.are.same({ type = "joined", room_id = string.rep("r", 128), seq = 0,
                epoch = "ep-" .. string.rep("r", 128) }, one(c, { type = "join", room_id = string.rep("r", 128) }))
        end)

        it("invalid_field for a bad user_id or since", function()
            local c = w:connect()
            expect_error(c, { type = "join", room_id = "r", user_id = 7 }, "invalid_field", "user_id")
            expect_error(c, { type = "join", room_id = "r", user_id = string.rep("u", 129) }, "invalid_field")
            expect_error(c, { type = "join", room_id = "r", since = -1 }, "invalid_field", "since")
            expect_error(c, { type = "join", room_id = "r", since = 1.5 }, "invalid_field", "since")
            expect_error(c, { type = "join", room_id = "r", since = "3" }, "invalid_field", "since")
            assert.are.same({}, c:rooms())
        end)

        it("already_member for a second join", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r" })
            expect_error(c, { type = "join", room_id = "r", id = 2 }, "already_member")
        end)

        it("replays history newer than since, in order, after the joined reply", function()
            local a, b = w:connect(), w:connect()
            one(a, { type = "join", room_id = "r", user_id = "a" })
            for i = 1, 4 do
                send(a, { type = "broadcast", room_id = "r", content = "m" .. i })
            end
            local out = send(b, { type = "join", room_id = "r", since = 2, id = "s" })
            assert.are.equal(3, #out)
            assert.are.same({ type = "joined", room_id = "r", id = "s", seq = 4, epoch = "ep-r",
                recovered = true }, out[1])
            assert.are.same({ 3, "m3", "broadcast", "a" }, { out[2].seq, out[2].content, out[2].type, out[2].sender })
            assert.are.same({ 4, "m4" }, { out[3].seq, out[3].content })
        end)

        it("a recovering join is released after its replay: live broadcasts follow, once", function()
            local a = w:connect()
            one(a, { type = "join", room_id = "r", user_id = "a" })
            send(a, { type = "broadcast", room_id = "r", content = "m1" })
            local b = w:connect()
            local out = send(b, { type = "join", room_id = "r", since = 0 })
            assert.are.same({ "joined", 1 }, { out[1].type, out[2].seq })
            assert.are.equal(2, #out)
            send(a, { type = "broadcast", room_id = "r", content = "m2" })
            out = w:take(b)
            assert.are.equal(1, #out)
            assert.are.same({ "m2", 2 }, { out[1].content, out[1].seq })
            -- released: no longer waiting
            assert.are.same({ nil, "not_found" }, { b:hold_intact("r") })
        end)

        it("since = 0 on an empty room replays nothing and reports seq 0", function()
            local c = w:connect()
            assert.are.same({ { type = "joined", room_id = "new", seq = 0, epoch = "ep-new",
                recovered = true } }, send(c, { type = "join", room_id = "new", since = 0 }))
        end)

        local function room_with(n)
            local a = w:connect()
            one(a, { type = "join", room_id = "r", user_id = "a" })
            for i = 1, n do
                send(a, { type = "broadcast", room_id = "r", content = "m" .. i })
            end
            return a
        end

        it("recovers with the matching epoch; not with another (no replay)", function()
            room_with(5)
            local b, c = w:connect(), w:connect()
            local out = send(b, { type = "join", room_id = "r", since = 3, epoch = "ep-r" })
            assert.are.equal(3, #out)
            assert.is_true(out[1].recovered)
            assert.are.same({ 4, 5 }, { out[2].seq, out[3].seq })
            out = send(c, { type = "join", room_id = "r", since = 3, epoch = "old-epoch" })
            assert.are.same({ { type = "joined", room_id = "r", seq = 5, epoch = "ep-r",
                recovered = false } }, out)
        end)

        it("recovered is false past recover_max, after trimming, and for a since from the future",
            function()
                boot({ recover_max = 3 })
                room_with(10)
                local b = w:connect()
                local out = send(b, { type = "join", room_id = "r", since = 6 })
                assert.is_false(out[1].recovered)
                assert.are.equal(1, #out)
                b = w:connect()
                out = send(b, { type = "join", room_id = "r", since = 7 })
                assert.is_true(out[1].recovered)
                assert.are.same({ 8, 9, 10 }, { out[2].seq, out[3].seq, out[4].seq })
                -- the store kept only the last 4: a client at 2 missed trimmed ones
                w.history_max = 4
                send(w:connect(), { type = "broadcast", room_id = "r", content = "x" })
                local a2 = w:connect()
                one(a2, { type = "join", room_id = "r" })
                send(a2, { type = "broadcast", room_id = "r", content = "y" })
                b = w:connect()
                out = send(b, { type = "join", room_id = "r", since = 8 })
                assert.is_true(out[1].recovered)
                b = w:connect()
                out = send(b, { type = "join", room_id = "r", since = 2 })
                assert.are.same({ type = "joined", room_id = "r", seq = 11, epoch = "ep-r",
                    recovered = false }, out[1])
                b = w:connect()
                out = send(b, { type = "join", room_id = "r", since = 50 })
                assert.is_false(out[1].recovered)
            end)

        it("answers unavailable when the history store cannot answer, after joining", function()
            room_with(2)
            w.history_error = "timeout"
            local b, c = w:connect(), w:connect()
            local out = send(b, { type = "join", room_id = "r", since = 1 })
            assert.are.same({ type = "joined", room_id = "r", recovered = false }, out[1])
            assert.are.same({ "error", "unavailable" }, { out[2].type, out[2].code })
            assert.matches("timeout", out[2].message)
            out = send(c, { type = "join", room_id = "r" })
            assert.are.same({ type = "joined", room_id = "r" }, out[1])
            assert.are.equal("unavailable", out[2].code)
            -- still a member:
            expect_error(c, { type = "join", room_id = "r" }, "already_member")
        end)

        it("invalid_field for an epoch that is not a string", function()
            local c = w:connect()
            expect_error(c, { type = "join", room_id = "r", since = 0, epoch = 5 }, "invalid_field", "epoch")
        end)
    end)

    describe("leave", function()
        it("answers left and removes the membership", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r" })
            assert.are.same({ type = "left", room_id = "r", id = 3 }, one(c, { type = "leave", room_id = "r", id = 3 }))
            assert.is_false(c:in_room("r"))
            assert.are.equal(0, w.rc.room("r"):count())
        end)

        it("not_member when not in the room; missing_field without room_id", function()
            local c = w:connect()
            expect_error(c, { type = "leave", room_id = "r" }, "not_member", "r")
            expect_error(c, { type = "leave" }, "missing_field", "room_id")
            expect_error(c, { type = "leave", room_id = {} }, "invalid_field")
        end)
    end)

    describe("broadcast", function()
        local a, b
        before_each(function()
            a, b = w:connect(), w:connect()
            one(a, { type = "join", room_id = "r", user_id = "alice" })
            one(b, { type = "join", room_id = "r" })
        end)

        it("answers unavailable when the room refuses (store_errors = refuse), with an id", function()
            w.publish_error = "unavailable"
            expect_error(a, { type = "broadcast", room_id = "r", content = "x", id = 7 }, "unavailable")
        end)

        it("answers unavailable without an id too when publishes can be refused", function()
            w.rc.store_errors = "refuse"
            w.publish_error = "unavailable"
            local r = expect_error(a, { type = "broadcast", room_id = "r", content = "x" },
                "unavailable")
            assert.is_nil(r.id)
            assert.are.equal(1, w.refused)
            assert.are.same({}, w:take(b))
            -- once the room takes messages again: delivered, and no ack without an id
            w.publish_error = nil
            local out = send(a, { type = "broadcast", room_id = "r", content = "y" })
            assert.are.equal(1, #out)
            assert.are.equal("broadcast", out[1].type)
            assert.is_true(w.published[#w.published].wait)
        end)

        it("does not wait without an id when publishes are never refused", function()
            assert.are.equal("deliver", w.rc.store_errors)
            one(a, { type = "broadcast", room_id = "r", content = "x" })
            assert.is_false(w.published[#w.published].wait)
            send(a, { type = "broadcast", room_id = "r", content = "x", id = 1 })
            assert.is_true(w.published[#w.published].wait)
        end)

        it("acks only when the request has an id", function()
            local out = send(a, { type = "broadcast", room_id = "r", content = "x", id = "b1" })
            assert.are.equal(2, #out)
            assert.are.equal("broadcast", out[1].type)
            assert.are.same({ type = "ack", id = "b1", seq = 1 }, out[2])
            out = send(a, { type = "broadcast", room_id = "r", content = "y" })
            assert.are.equal(1, #out)
            assert.are.equal("broadcast", out[1].type)
        end)

        it("names anonymous senders conn-<id>", function()
            send(b, { type = "broadcast", room_id = "r", content = "anon" })
            local got = w:take(a)[1]
            assert.are.equal("conn-" .. b.id, got.sender)
        end)

        it("keeps unusual content intact", function()
            local content = 'quote " slash / back \\ nl \n uni \xc3\xa9 {"}'
            send(a, { type = "broadcast", room_id = "r", content = content })
            assert.are.equal(content, w:take(b)[1].content)
            send(a, { type = "broadcast", room_id = "r", content = "" })
            assert.are.equal("", w:take(b)[1].content)
        end)

        it("not_member when the sender is not in the room, and nothing is published", function()
            local c = w:connect()
            expect_error(c, { type = "broadcast", room_id = "r", content = "x" }, "not_member")
            assert.are.same({}, w:take(a))
            assert.are.equal(0, #w.published)
        end)

        it("missing_field / invalid_field for room_id and content", function()
            expect_error(a, { type = "broadcast", content = "x" }, "missing_field", "room_id")
            expect_error(a, { type = "broadcast", room_id = "r" }, "missing_field", "content")
            expect_error(a, { type = "broadcast", room_id = "r", content = 42 }, "invalid_field", "content")
            expect_error(a, { type = "broadcast", room_id = "r", content = { t = 1 } }, "invalid_field", "content")
            expect_error(a, { type = "broadcast", room_id = string.rep("r", 200), content = "x" },
                "invalid_field", "room_id")
            assert.are.same({}, w:take(b))
        end)

        it("too_big for content over the default 16 KiB", function()
            local r = expect_error(a, { type = "broadcast", room_id = "r", content = string.rep("x", 16385) },
                "too_big", "16384")
            assert.is_nil(r.id)
            assert.are.equal(1, #send(a, { type = "broadcast", room_id = "r", content = string.rep("x", 16384) }))
        end)

        it("too_big honours max_content_bytes from the config", function()
            boot({ max_content_bytes = 10 })
            local c = w:connect()
            one(c, { type = "join", room_id = "r" })
            expect_error(c, { type = "broadcast", room_id = "r", content = "12345678901" }, "too_big", "10")
            assert.are.equal(1, #send(c, { type = "broadcast", room_id = "r", content = "1234567890" }))
        end)

        it("too_big when the runtime refuses the payload", function()
            w.max_message = 100
            expect_error(a, { type = "broadcast", room_id = "r", content = string.rep("x", 90) }, "too_big")
        end)
    end)

    describe("direct", function()
        it("reaches every connection of the user, with from and content", function()
            local a, b1, b2 = w:connect(), w:connect(), w:connect()
            one(a, { type = "join", room_id = "x", user_id = "alice" })
            one(b1, { type = "join", room_id = "y", user_id = "bob" })
            one(b2, { type = "join", room_id = "z", user_id = "bob" })
            assert.are.same({ { type = "ack", id = 1, delivered = 2 } },
                send(a, { type = "direct", to = "bob", content = "psst", id = 1 }))
            local want = { { type = "direct", from = "alice", content = "psst" } }
            assert.are.same(want, w:take(b1))
            assert.are.same(want, w:take(b2))
            assert.are.same({}, send(a, { type = "direct", to = "bob", content = "again" }))
        end)

        it("not_found when nobody is reached", function()
            local a = w:connect()
            expect_error(a, { type = "direct", to = "ghost", content = "boo" }, "not_found", "ghost")
        end)

        it("validates to and content", function()
            local a = w:connect()
            expect_error(a, { type = "direct", content = "x" }, "missing_field", "to")
            expect_error(a, { type = "direct", to = 3, content = "x" }, "invalid_field", "to")
            expect_error(a, { type = "direct", to = "b" }, "missing_field", "content")
            expect_error(a, { type = "direct", to = "b", content = false }, "invalid_field", "content")
            expect_error(a, { type = "direct", to = "b", content = string.rep("x", 20000) }, "too_big")
        end)
    end)

    describe("history", function()
        local a
        before_each(function()
            a = w:connect()
            one(a, { type = "join", room_id = "r", user_id = "alice" })
            for i = 1, 120 do
                send(a, { type = "broadcast", room_id = "r", content = "m" .. i })
            end
        end)

        local function seqs(r)
            local out = {}
            for i, m in ipairs(r.messages) do out[i] = m.seq end
            return out
        end

        it("returns decoded messages newer than since, oldest first", function()
            local r = one(a, { type = "history", room_id = "r", since = 115, id = "h" })
            assert.are.equal("history", r.type)
            assert.are.equal("r", r.room_id)
            assert.are.equal("h", r.id)
            assert.are.same({ 116, 117, 118, 119, 120 }, seqs(r))
            assert.are.same({ type = "broadcast", room_id = "r", content = "m116", sender = "alice",
                seq = 116, ts = w.clock }, r.messages[1])
        end)

        it("without since returns the latest `limit` (default 50)", function()
            local r = one(a, { type = "history", room_id = "r" })
            assert.are.equal(50, #r.messages)
            assert.are.equal(71, r.messages[1].seq)
            assert.are.equal(120, r.messages[50].seq)
            r = one(a, { type = "history", room_id = "r", limit = 3 })
            assert.are.same({ 118, 119, 120 }, seqs(r))
        end)

        it("clamps limit to 1..1000", function()
            assert.are.equal(120, #one(a, { type = "history", room_id = "r", since = 0, limit = 5000 }).messages)
            assert.are.equal(100, #one(a, { type = "history", room_id = "r", since = 0, limit = 100 }).messages)
            assert.are.same({ 1 }, seqs(one(a, { type = "history", room_id = "r", since = 0, limit = 0 })))
            assert.are.same({ 11, 12 }, seqs(one(a, { type = "history", room_id = "r", since = 10, limit = 2 })))
        end)

        it("pages back with before, and carries the room's seq and epoch", function()
            local r = one(a, { type = "history", room_id = "r", before = 71, limit = 50 })
            assert.are.equal(50, #r.messages)
            assert.are.same({ 21, 70 }, { r.messages[1].seq, r.messages[50].seq })
            assert.are.same({ 120, "ep-r" }, { r.seq, r.epoch })
            r = one(a, { type = "history", room_id = "r", before = 21, limit = 50 })
            assert.are.equal(20, #r.messages)
            assert.are.equal(1, r.messages[1].seq)
            r = one(a, { type = "history", room_id = "r", before = 1 })
            assert.are.equal(0, #r.messages)
            expect_error(a, { type = "history", room_id = "r", since = 1, before = 5 }, "invalid_field")
            expect_error(a, { type = "history", room_id = "r", before = -1 }, "invalid_field", "before")
        end)

        it("unavailable when the store cannot answer", function()
            w.history_error = "timeout"
            expect_error(a, { type = "history", room_id = "r" }, "unavailable", "timeout")
        end)

        it("encodes an empty result as an array", function()
            w:send(a, '{"type":"history","room_id":"r","since":500}')
            local raw = w:raw(a)[1].data
            assert.matches('"messages":%[%]', raw)
        end)

        it("needs membership and valid fields", function()
            local c = w:connect()
            expect_error(c, { type = "history", room_id = "r" }, "not_member")
            expect_error(a, { type = "history" }, "missing_field", "room_id")
            expect_error(a, { type = "history", room_id = "r", since = "x" }, "invalid_field", "since")
            expect_error(a, { type = "history", room_id = "r", limit = -5 }, "invalid_field", "limit")
        end)
    end)

    describe("presence", function()
        it("lists distinct users and counts connections", function()
            local a1, a2, anon = w:connect(), w:connect(), w:connect()
            one(a1, { type = "join", room_id = "r", user_id = "alice" })
            one(a2, { type = "join", room_id = "r", user_id = "alice" })
            one(anon, { type = "join", room_id = "r" })
            assert.are.same({ type = "presence", room_id = "r", users = { "alice" }, count = 3, id = 4 },
                one(anon, { type = "presence", room_id = "r", id = 4 }))
        end)

        it("counts the cluster's connections when the bus answers for every node", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r", user_id = "alice" })
            w.cluster_presence = { users = { "alice", "bob" }, count = 5 }
            assert.are.same({ type = "presence", room_id = "r", users = { "alice", "bob" }, count = 5, id = 2 },
                one(c, { type = "presence", room_id = "r", id = 2 }))
            w.cluster_presence = nil
        end)

        it("answers the count alone with count_only", function()
            local a, anon = w:connect(), w:connect()
            one(a, { type = "join", room_id = "r", user_id = "alice" })
            one(anon, { type = "join", room_id = "r" })
            assert.are.same({ type = "presence", room_id = "r", count = 2, id = 7 },
                one(anon, { type = "presence", room_id = "r", count_only = true, id = 7 }))
            w.cluster_presence = { users = { "alice", "bob" }, count = 100000 }
            assert.are.same({ type = "presence", room_id = "r", count = 100000 },
                one(a, { type = "presence", room_id = "r", count_only = true }))
            w.cluster_presence = nil
            expect_error(a, { type = "presence", room_id = "r", count_only = "yes" }, "invalid_field")
        end)

        it("encodes no users as an empty array", function()
            local c = w:connect()
            one(c, { type = "join", room_id = "r" })
            w:send(c, '{"type":"presence","room_id":"r"}')
            local raw = w:raw(c)[1].data
            assert.matches('"users":%[%]', raw)
            assert.matches('"count":1', raw)
        end)

        it("needs membership and a room_id", function()
            local c = w:connect()
            expect_error(c, { type = "presence", room_id = "r" }, "not_member")
            expect_error(c, { type = "presence" }, "missing_field")
        end)
    end)

    describe("disconnect", function()
        it("removes the connection from its rooms and from presence", function()
            local a, b = w:connect(), w:connect()
            one(a, { type = "join", room_id = "r", user_id = "alice" })
            one(b, { type = "join", room_id = "r", user_id = "bob" })
            w:disconnect(a)
            assert.are.same({ type = "presence", room_id = "r", users = { "bob" }, count = 1 },
                one(b, { type = "presence", room_id = "r" }))
        end)
    end)
    describe("on_api_publish (POST /api/publish)", function()
        local function api(room, body, sender)
            return w.handlers.api_publish(room, cjson.encode(body), sender or "server")
        end

        it("content becomes a broadcast from the API sender, stamped", function()
            local payload, stamp = api("lobby", { room_id = "lobby", content = "deploy done" }, "ops")
            assert.are.equal(1, stamp)
            assert.are.equal('{"type":"broadcast","room_id":"lobby","content":"deploy done",'
                .. '"sender":"ops"}', payload)
        end)

        it("data goes through as JSON", function()
            local payload = api("r", { room_id = "r", data = { n = 1 } })
            assert.are.same({ type = "broadcast", room_id = "r", data = { n = 1 }, sender = "server" },
                cjson.decode(payload))
        end)

        it("refuses what a member could not send", function()
            local p, code = api("r", { room_id = "r", content = 5 })
            assert.is_nil(p)
            assert.are.equal("invalid_field", code)
            p, code = api("r", { room_id = "r", content = string.rep("x", 20000) })
            assert.is_nil(p)
            assert.are.equal("too_big", code)
        end)

        it("a body that is not a JSON object is bad_json", function()
            local p, code = w.handlers.api_publish("r", "[1]", "server")
            assert.is_nil(p)
            assert.are.equal("bad_json", code)
            p, code = api("r", { room_id = "r" })
            assert.is_nil(p)
            assert.are.equal("missing_field", code)
        end)
    end)
end)
