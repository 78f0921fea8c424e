package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")
local hs256 = require("hs256")
local cjson = require("cjson")

local SECRET = "s3cret-key"

describe("the fake's HS256 (so the plugin specs test real crypto)", function()
    it("matches FIPS 180-2 and RFC 4231 vectors", function()
        assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            hs256.hex(hs256.sha256("abc")))
        assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            hs256.hex(hs256.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
        assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            hs256.hex(hs256.hmac_sha256("Jefe", "what do ya want for nothing?")))
        -- RFC 4231 test case 6: a key longer than the block size
        assert.are.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            hs256.hex(hs256.hmac_sha256(string.rep("\170", 131),
                "Test Using Larger Than Block-Size Key - Hash Key First")))
    end)

    it("verifies a token signed by OpenSSL and rejects tampering", function()
        -- signed with: openssl dgst -sha256 -hmac your-256-bit-secret
        local t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6Ikpv"
            .. "aG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        assert.are.equal("John Doe", hs256.verify(t, "your-256-bit-secret", 0).name)
        assert.are.same({ nil, "bad_signature" }, { hs256.verify(t, "other", 0) })
        assert.are.same({ nil, "bad_signature" }, { hs256.verify(t:sub(1, -3) .. "6c", "your-256-bit-secret", 0) })
        -- same bytes, non-canonical base64url (the last char's spare bits set)
        assert.are.same({ nil, "malformed" }, { hs256.verify(t:sub(1, -2) .. "d", "your-256-bit-secret", 0) })
        assert.are.same({ nil, "malformed" }, { hs256.verify("a.b", "k", 0) })
        assert.are.same({ nil, "bad_alg" },
            { hs256.verify(hs256.sign({ sub = "x" }, "k", { alg = "none" }), "k", 0) })
    end)
end)

describe("plugins/jwt_auth.lua", function()
    local w

    local function boot(cfg)
        local config = { secret = SECRET }
        for k, v in pairs(cfg or {}) do config[k] = v end
        w = fake.new()
        w:boot({
            script = "scripts/chat.lua",
            plugins = { { name = "jwt_auth", path = "plugins/jwt_auth.lua", config = config } },
        })
    end

    local function now_s()
        return math.floor(w.clock / 1000)
    end

    local function token(claims, secret)
        return hs256.sign(claims, secret or SECRET)
    end

    local function send(c, tbl)
        w:send_json(c, tbl)
        return w:take(c)
    end

    before_each(function()
        boot()
    end)

    it("refuses to load without a secret", function()
        local w2 = fake.new()
        local ok, err = pcall(w2.boot, w2, { script = "scripts/chat.lua",
            plugins = { { name = "jwt_auth", path = "plugins/jwt_auth.lua", config = {} } } })
        assert.is_false(ok)
        assert.matches("^plugins/jwt_auth.lua:%d+: jwt_auth: config.secret", err)
    end)

    describe("at connect", function()
        it("accepts ?token= and sets conn.user and the claims", function()
            local c = w:connect({ args = { token = token({ sub = "alice", role = "admin" }) } })
            assert.truthy(c)
            assert.are.equal("alice", c.user)
            assert.are.same({ sub = "alice", role = "admin" }, cjson.decode(c:get("claims")))
        end)

        it("accepts Authorization: Bearer (any case)", function()
            local c = w:connect({ headers = { authorization = "bearer " .. token({ sub = "bob" }) } })
            assert.are.equal("bob", c.user)
            c = w:connect({ headers = { authorization = "Bearer  " .. token({ sub = "bo" }) .. " " } })
            assert.are.equal("bo", c.user)
        end)

        it("refuses a bad token with 401 and the reason", function()
            local cases = {
                { token({ sub = "a" }, "wrong"), "bad_signature" },
                { "garbage", "malformed" },
                { token({ sub = "a", exp = now_s() - 1 }), "expired" },
                { token({ sub = "a", nbf = now_s() + 60 }), "not_yet_valid" },
                { hs256.sign({ sub = "a" }, SECRET, { alg = "HS512" }), "bad_alg" },
            }
            for _, case in ipairs(cases) do
                local c, status, reason = w:connect({ args = { token = case[1] } })
                assert.is_nil(c)
                assert.are.equal(401, status)
                assert.matches(case[2], reason, 1, true)
            end
            local c, status, reason = w:connect({ args = { token = token({ name = "no sub" }) } })
            assert.is_nil(c)
            assert.are.equal(401, status)
            assert.matches("sub", reason)
        end)

        it("applies leeway to exp and nbf", function()
            boot({ leeway = 30 })
            assert.truthy(w:connect({ args = { token = token({ sub = "a", exp = now_s() - 10 }) } }))
            assert.truthy(w:connect({ args = { token = token({ sub = "a", nbf = now_s() + 10 }) } }))
            assert.is_nil(w:connect({ args = { token = token({ sub = "a", exp = now_s() - 31 }) } }))
        end)

        it("accepts a connection without a token (it may auth by message)", function()
            local c = w:connect()
            assert.truthy(c)
            assert.is_nil(c.user)
        end)
    end)

    describe("auth message", function()
        it("authenticates, answers authenticated and stops the chain", function()
            local c = w:connect()
            assert.are.same({ { type = "authenticated", user_id = "carol", id = "a1" } },
                send(c, { type = "auth", token = token({ sub = "carol" }), id = "a1" }))
            assert.are.equal("carol", c.user)
            -- then the protocol works
            assert.are.same({ { type = "joined", room_id = "lobby" } }, send(c, { type = "join", room_id = "lobby" }))
        end)

        it("answers not_authorized for a bad token and keeps the connection open", function()
            local c = w:connect()
            local r = send(c, { type = "auth", token = token({ sub = "x" }, "nope"), id = 2 })[1]
            assert.are.same({ "error", "not_authorized", 2 }, { r.type, r.code, r.id })
            assert.matches("bad_signature", r.message)
            assert.is_nil(c.user)
            assert.is_nil(w:state(c).closing)
        end)

        it("missing_field / invalid_field for the token", function()
            local c = w:connect()
            assert.are.equal("missing_field", send(c, { type = "auth" })[1].code)
            assert.are.equal("invalid_field", send(c, { type = "auth", token = 5 })[1].code)
        end)

        it("allows refreshing with the same sub but not switching users", function()
            local c = w:connect({ args = { token = token({ sub = "alice" }) } })
            assert.are.equal("authenticated", send(c, { type = "auth", token = token({ sub = "alice", v = 2 }) })[1].type)
            assert.are.equal(2, cjson.decode(c:get("claims")).v)
            local r = send(c, { type = "auth", token = token({ sub = "mallory" }) })[1]
            assert.are.equal("not_authorized", r.code)
            assert.matches("alice", r.message)
            assert.are.equal("alice", c.user)
        end)
    end)

    describe("required (default)", function()
        it("denies every non-auth message before authentication", function()
            local c = w:connect()
            for _, m in ipairs({
                { type = "join", room_id = "lobby", user_id = "x", id = 1 },
                { type = "broadcast", room_id = "lobby", content = "x" },
                { type = "direct", to = "x", content = "x" },
            }) do
                local r = send(c, m)
                assert.are.equal(1, #r)
                assert.are.equal("not_authorized", r[1].code)
            end
            assert.are.same({}, c:rooms())
            assert.is_nil(c.user)
        end)

        it("denies conn:join from scripts before authentication", function()
            local c = w:connect()
            assert.are.same({ nil, "denied", "not_authorized", "authenticate before joining rooms" },
                { c:join("lobby") })
        end)

        it("closes connections that stay unauthenticated past auth_timeout", function()
            boot({ auth_timeout = 5 })
            local slow, quick = w:connect(), w:connect()
            send(quick, { type = "auth", token = token({ sub = "q" }) })
            w:tick(4000)
            assert.is_nil(w:state(slow).closing)
            w:tick(1500)
            assert.is_true(w:state(slow).closing)
            assert.are.equal(1008, w:state(slow).close_code)
            assert.is_nil(w:state(quick).closing)
        end)

        it("keeps auth deadlines across a reload", function()
            boot({ auth_timeout = 5 })
            local opts = { script = "scripts/chat.lua", plugins = { { name = "jwt_auth",
                path = "plugins/jwt_auth.lua", config = { secret = SECRET, auth_timeout = 5 } } } }
            local slow = w:connect()
            w:tick(1000)
            w:reload(opts)
            w:tick(4500)
            assert.is_true(w:state(slow).closing)
        end)
    end)

    describe("not required", function()
        before_each(function()
            boot({ required = false })
        end)

        it("lets anonymous connections use the protocol", function()
            local c = w:connect()
            assert.are.same({ { type = "joined", room_id = "lobby" } },
                send(c, { type = "join", room_id = "lobby", user_id = "anon" }))
            w:tick(60000)
            assert.is_nil(w:state(c).closing)
        end)

        it("still refuses a bad token at connect", function()
            assert.is_nil(w:connect({ args = { token = "bad" } }))
        end)
    end)

    describe("rooms claim", function()
        it("limits joins to matching patterns", function()
            local c = w:connect({ args = { token = token({ sub = "p", rooms = { "lobby", "game:*" } }) } })
            assert.are.equal("joined", send(c, { type = "join", room_id = "lobby" })[1].type)
            assert.are.equal("joined", send(c, { type = "join", room_id = "game:42" })[1].type)
            local r = send(c, { type = "join", room_id = "admin", id = 7 })[1]
            assert.are.same({ "error", "forbidden_room", 7 }, { r.type, r.code, r.id })
            assert.matches("admin", r.message)
            assert.are.equal("forbidden_room", send(c, { type = "join", room_id = "lobby2" })[1].code)
            assert.are.same({ "lobby", "game:42" }, c:rooms())
        end)

        it("grants nothing when the claim is malformed", function()
            local c = w:connect({ args = { token = token({ sub = "p", rooms = "lobby" }) } })
            assert.are.equal("forbidden_room", send(c, { type = "join", room_id = "lobby" })[1].code)
        end)

        it("refuses joins once the token has expired", function()
            local c = w:connect({ args = { token = token({ sub = "p", exp = now_s() + 60 }) } })
            assert.are.equal("joined", send(c, { type = "join", room_id = "a" })[1].type)
            w:advance(61000)
            local r = send(c, { type = "join", room_id = "b" })[1]
            assert.are.equal("not_authorized", r.code)
            assert.matches("expired", r.message)
        end)
    end)
end)
