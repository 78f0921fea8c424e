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
        assert.matches("^plugins/jwt_auth.lua:%d+: jwt_auth: a key is required", err)
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
            assert.matches("bad_subject", reason)
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
            assert.are.same({ { type = "joined", room_id = "lobby", seq = 0, epoch = "ep-lobby" } }, send(c, { type = "join", room_id = "lobby" }))
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
            assert.are.same({ { type = "joined", room_id = "lobby", seq = 0, epoch = "ep-lobby" } },
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

-- The C verifier's reason and algorithm tables must be the ones the fake
-- (and so these specs) use: read them from core/proto/jwt.h.
describe("fake jwt backend", function()
    local function xmacro(text, map)
        local body = text:match("#define " .. map .. "%(XX%)(.-)\n/%*")
            or text:match("#define " .. map .. "%(XX%)(.-)\n#")
        local out = {}
        for a, b in body:gmatch("XX%(([%w_]+),%s*([^,%)]+)") do
            out[#out + 1] = { a, b }
        end
        return out
    end

    it("has core/proto/jwt.h's reasons and algorithms in order", function()
        local f = assert(io.open("core/proto/jwt.h"))
        local text = f:read("*a")
        f:close()
        local reasons = {}
        for _, r in ipairs(xmacro(text, "JWT_REASON_MAP")) do
            reasons[#reasons + 1] = r[2]
        end
        assert.are.same(fake.JWT_REASONS, reasons)
        local algs = {}
        for _, a in ipairs(xmacro(text, "JWT_ALG_MAP")) do
            algs[#algs + 1] = a[2]:match('"(.-)"')
        end
        assert.are.same(fake.JWT_ALGS, algs)
    end)
end)

describe("plugins/jwt_auth.lua keys and claims", function()
    local w
    local tmpfiles = {}

    local function write_tmp(text)
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        f:write(text)
        f:close()
        tmpfiles[#tmpfiles + 1] = path
        return path
    end

    after_each(function()
        for _, p in ipairs(tmpfiles) do os.remove(p) end
        tmpfiles = {}
    end)

    local function try_boot(config)
        w = fake.new()
        return pcall(w.boot, w, {
            script = "scripts/chat.lua",
            plugins = { { name = "jwt_auth", path = "plugins/jwt_auth.lua", config = config } },
        })
    end

    local function boot(config)
        local ok, err = try_boot(config)
        assert(ok, err)
    end

    local function now_s()
        return math.floor(w.clock / 1000)
    end

    -- -> reason of the refusal at connect, or "ok"
    local function verdict(claims, header, secret)
        local t = hs256.sign(claims, secret or SECRET, header)
        local c, _, reason = w:connect({ args = { token = t } })
        if c then return "ok" end
        return reason:match("%((.-)%)")
    end

    describe("config", function()
        local cases = {
            { { public_key = "/x.pem" }, "algorithms is required with public_key or jwks" },
            { { jwks = "/x.json" }, "algorithms is required" },
            { { secret = SECRET, algorithms = { "none" } }, "unknown algorithm none" },
            { { secret = SECRET, algorithms = { "hs256" } }, "unknown algorithm hs256" },
            { { secret = SECRET, algorithms = {} }, "algorithms must be a non%-empty array" },
            { { secret = SECRET, audiance = "x" }, "unknown option 'audiance'" },
            { { secret = SECRET, leeway = -1 }, "leeway must be" },
            { { secret = SECRET, max_age = 0 }, "max_age must be" },
            { { secret = SECRET, issuer = 5 }, "issuer must be a string or an array" },
            { { secret = SECRET, audience = { "a", 2 } }, "audience must be" },
            { { secret = "" }, "secret must be a non%-empty string" },
            { { algorithms = { "RS256" }, public_key = "/nonexistent/k.pem" }, "cannot read" },
            { { algorithms = { "RS256" }, jwks = "/nonexistent/k.json" }, "cannot read" },
        }
        for _, case in ipairs(cases) do
            it("refuses " .. case[2], function()
                local ok, err = try_boot(case[1])
                assert.is_false(ok)
                assert.matches("jwt_auth: .*" .. case[2], err)
            end)
        end

        it("refuses a PEM file holding a private key, or no key", function()
            local p = write_tmp("-----BEGIN PRIVATE KEY-----\nMC4CAQ==\n-----END PRIVATE KEY-----\n")
            local ok, err = try_boot({ algorithms = { "EdDSA" }, public_key = p })
            assert.is_false(ok)
            assert.matches("public_key .*private key", err)
            ok, err = try_boot({ algorithms = { "EdDSA" }, public_key = write_tmp("hello") })
            assert.is_false(ok)
            assert.matches("no PEM public key", err)
            ok = try_boot({ algorithms = { "EdDSA" },
                public_key = write_tmp("-----BEGIN PUBLIC KEY-----\nMCo=\n-----END PUBLIC KEY-----\n") })
            assert.is_true(ok)
        end)
    end)

    describe("jwks", function()
        it("hands every JWK's members to the key set and skips what it cannot use", function()
            local p = write_tmp(cjson.encode({ keys = {
                { kty = "RSA", kid = "r1", alg = "RS256", use = "sig", n = "AQAB", e = "AQAB" },
                { kty = "EC", kid = "e1", crv = "P-256", x = "eA", y = "eQ" },
                { kty = "OKP", kid = "o1", crv = "Ed25519", x = "eA" },
                { kty = "oct", kid = "s1", k = "c2VjcmV0" },
            } }))
            boot({ algorithms = { "RS256", "ES256", "EdDSA" }, jwks = p })
            assert.are.equal(3, #w.jwt_keys)
            assert.are.same({ kty = "RSA", kid = "r1", alg = "RS256", use = "sig", n = "AQAB",
                e = "AQAB", has_private = false }, w.jwt_keys[1])
            assert.are.same({ kty = "EC", kid = "e1", crv = "P-256", x = "eA", y = "eQ",
                has_private = false }, w.jwt_keys[2])
            local warned = false
            for _, l in ipairs(w.logs) do
                warned = warned or (l.level == "warn" and l.text:find("kid \"s1\"", 1, true) ~= nil)
            end
            assert.is_true(warned)
        end)

        local bad = {
            { "not json", "not a JSON Web Key Set" },
            { '{"keys": 5}', "not a JSON Web Key Set" },
            { '[{"kty":"RSA"}]', "not a JSON Web Key Set" },
            { '{"keys": [5]}', "key 1 is not an object" },
            { '{"keys": [{"kty":"RSA","n":5}]}', "\"n\" must be a string" },
            { '{"keys": [{"kty":"OKP","crv":"Ed25519","x":"eA","d":"eA"}]}', "private key" },
            { '{"keys": [{"kty":"oct","k":"eA"}]}', "no usable signature key" },
            { '{"keys": []}', "no usable signature key" },
        }
        for _, case in ipairs(bad) do
            it("refuses " .. case[1], function()
                local ok, err = try_boot({ algorithms = { "RS256" }, jwks = write_tmp(case[1]) })
                assert.is_false(ok)
                assert.matches("jwt_auth: jwks .*" .. case[2], err)
            end)
        end

        it("refuses a token of an algorithm no key has (no_key)", function()
            local p = write_tmp('{"keys":[{"kty":"OKP","crv":"Ed25519","x":"eA"}]}')
            boot({ algorithms = { "EdDSA", "HS256" }, jwks = p })
            assert.are.equal("no_key", verdict({ sub = "a" }))
        end)
    end)

    describe("header", function()
        before_each(function()
            boot({ secret = SECRET, algorithms = { "HS256", "RS256" } })
        end)

        it("refuses algorithms outside the list, none, and a missing alg", function()
            assert.are.equal("bad_alg", verdict({ sub = "a" }, { alg = "HS512" }))
            assert.are.equal("bad_alg", verdict({ sub = "a" }, { alg = "none" }))
            assert.are.equal("bad_alg", verdict({ sub = "a" }, { typ = "JWT" }))
            assert.are.equal("bad_alg", verdict({ sub = "a" }, { alg = { "HS256" } }))
        end)

        it("refuses crit and a non-string kid", function()
            assert.are.equal("unsupported_crit", verdict({ sub = "a" }, { alg = "HS256", crit = { "exp" } }))
            assert.are.equal("malformed", verdict({ sub = "a" }, { alg = "HS256", kid = 7 }))
            assert.are.equal("ok", verdict({ sub = "a" }, { alg = "HS256", kid = "any" }))
        end)

        it("refuses an RS256 token with only an HMAC key (no_key)", function()
            assert.are.equal("no_key", verdict({ sub = "a" }, { alg = "RS256" }))
        end)
    end)

    describe("claims", function()
        it("sub: a string of 1..128 bytes (a number is refused)", function()
            boot({ secret = SECRET })
            assert.are.equal("bad_subject", verdict({ sub = 123 }))
            assert.are.equal("bad_subject", verdict({ sub = "" }))
            assert.are.equal("bad_subject", verdict({ sub = string.rep("x", 129) }))
            assert.are.equal("bad_subject", verdict({ sub = { "a" } }))
            assert.are.equal("ok", verdict({ sub = string.rep("x", 128) }))
        end)

        it("exp, nbf, iat must be numbers", function()
            boot({ secret = SECRET })
            assert.are.equal("bad_claim", verdict({ sub = "a", exp = "soon" }))
            assert.are.equal("bad_claim", verdict({ sub = "a", nbf = true }))
            assert.are.equal("bad_claim", verdict({ sub = "a", iat = "x" }))
        end)

        it("iat in the future beyond leeway", function()
            boot({ secret = SECRET, leeway = 10 })
            assert.are.equal("ok", verdict({ sub = "a", iat = now_s() + 10 }))
            assert.are.equal("issued_in_future", verdict({ sub = "a", iat = now_s() + 11 }))
        end)

        it("max_age on iat", function()
            boot({ secret = SECRET, max_age = 300 })
            assert.are.equal("ok", verdict({ sub = "a", iat = now_s() - 300 }))
            assert.are.equal("too_old", verdict({ sub = "a", iat = now_s() - 301 }))
            assert.are.equal("missing_iat", verdict({ sub = "a" }))
        end)

        it("iss when configured (string or list)", function()
            boot({ secret = SECRET, issuer = "https://auth.example" })
            assert.are.equal("ok", verdict({ sub = "a", iss = "https://auth.example" }))
            assert.are.equal("bad_issuer", verdict({ sub = "a", iss = "https://evil.example" }))
            assert.are.equal("bad_issuer", verdict({ sub = "a" }))
            boot({ secret = SECRET, issuer = { "i1", "i2" } })
            assert.are.equal("ok", verdict({ sub = "a", iss = "i2" }))
            assert.are.equal("bad_issuer", verdict({ sub = "a", iss = { "i1" } }))
        end)

        it("aud when configured: a string or an array naming it", function()
            boot({ secret = SECRET, audience = "chat" })
            assert.are.equal("ok", verdict({ sub = "a", aud = "chat" }))
            assert.are.equal("ok", verdict({ sub = "a", aud = { "billing", "chat" } }))
            assert.are.equal("bad_audience", verdict({ sub = "a", aud = { "billing" } }))
            assert.are.equal("bad_audience", verdict({ sub = "a", aud = "Chat" }))
            assert.are.equal("bad_audience", verdict({ sub = "a" }))
            assert.are.equal("bad_audience", verdict({ sub = "a", aud = { chat = true } }))
            -- not configured: aud is not looked at
            boot({ secret = SECRET })
            assert.are.equal("ok", verdict({ sub = "a", aud = "anything" }))
        end)
    end)

    describe("refusals", function()
        it("are counted by reason and logged at debug without the token", function()
            boot({ secret = SECRET })
            local t = hs256.sign({ sub = "a", exp = now_s() - 5 }, SECRET)
            assert.is_nil(w:connect({ args = { token = t } }))
            assert.is_nil(w:connect({ args = { token = "x.y.z" } }))
            local c = w:connect()
            w:send_json(c, { type = "auth", token = t })
            assert.are.same({ expired = 2, malformed = 1 }, w.jwt_refusals)
            local lines = 0
            for _, l in ipairs(w.logs) do
                if l.text:find("token refused", 1, true) then
                    lines = lines + 1
                    assert.are.equal("debug", l.level)
                    assert.is_nil(l.text:find(t, 1, true))
                    assert.is_nil(l.text:find(t:match("^[^.]+"), 1, true))
                end
            end
            assert.are.equal(3, lines)
        end)
    end)
end)
