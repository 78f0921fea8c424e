package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")

describe("plugins/ratelimit.lua", function()
    local w, opts

    local function boot(config, script)
        w = fake.new()
        opts = {
            script = script or "scripts/echo.lua",
            plugins = { { name = "ratelimit", path = "plugins/ratelimit.lua", config = config } },
        }
        w:boot(opts)
    end

    -- send n messages; -> echoed count, list of error frames
    local function burst(c, n, text)
        local echoed, errs = 0, {}
        for _ = 1, n do
            w:send(c, text or "ping")
        end
        for _, f in ipairs(w:raw(c)) do
            if f.data == (text or "ping") then
                echoed = echoed + 1
            else
                errs[#errs + 1] = require("cjson").decode(f.data)
            end
        end
        return echoed, errs
    end

    it("lets a burst through, then answers rate_limited", function()
        boot({ rate = 2, burst = 5 })
        local c = w:connect()
        local echoed, errs = burst(c, 8)
        assert.are.equal(5, echoed)
        assert.are.equal(3, #errs)
        assert.are.same({ "error", "rate_limited" }, { errs[1].type, errs[1].code })
        assert.matches("2 per second", errs[1].message)
    end)

    it("echoes the request id in the error when the script decodes JSON", function()
        boot({ rate = 1, burst = 1 }, "scripts/chat.lua")
        local c = w:connect()
        w:send(c, '{"type":"join","room_id":"r","id":"m1"}')
        w:send(c, '{"type":"join","room_id":"s","id":"m2"}')
        local out = w:take(c)
        assert.are.same({ type = "joined", room_id = "r", id = "m1", seq = 0, epoch = "ep-r" }, out[1])
        assert.are.same({ "rate_limited", "m2" }, { out[2].code, out[2].id })
        assert.is_false(c:in_room("s"))
    end)

    it("refills at rate tokens per second, up to burst", function()
        boot({ rate = 2, burst = 4 })
        local c = w:connect()
        assert.are.equal(4, (burst(c, 6)))
        w:advance(500) -- one token
        assert.are.equal(1, (burst(c, 3)))
        w:advance(60000) -- long idle refills only to burst
        assert.are.equal(4, (burst(c, 10)))
    end)

    it("keeps a bucket per connection", function()
        boot({ rate = 1, burst = 2 })
        local a, b = w:connect(), w:connect()
        assert.are.equal(2, (burst(a, 5)))
        assert.are.equal(2, (burst(b, 5)))
    end)

    it("keeps the bucket in conn data, so a reload neither refills nor forgets it", function()
        boot({ rate = 1, burst = 3 })
        local c = w:connect()
        assert.are.equal(3, (burst(c, 3)))
        w:reload(opts)
        local echoed, errs = burst(c, 1)
        assert.are.equal(0, echoed)
        assert.are.equal("rate_limited", errs[1].code)
        assert.is_string(c:get("rl.tokens"))
    end)

    it("closes with 1008 after close_after violations in a row", function()
        boot({ rate = 1, burst = 1, close_after = 3 })
        local c = w:connect()
        local echoed, errs = burst(c, 3)
        assert.are.equal(1, echoed)
        assert.are.equal(2, #errs)
        assert.is_nil(w:state(c).closing)
        w:send(c, "ping") -- third strike: closed, no error frame
        assert.are.same({}, w:raw(c))
        assert.is_true(w:state(c).closing)
        assert.are.equal(1008, w:state(c).close_code)
        assert.are.equal("info", w.logs[#w.logs].level)
    end)

    it("resets the streak after an accepted message", function()
        boot({ rate = 1, burst = 1, close_after = 2 })
        local c = w:connect()
        burst(c, 2) -- one ok, one strike
        w:advance(1000)
        burst(c, 2) -- ok resets, then one strike
        assert.is_nil(w:state(c).closing)
        assert.are.equal("1", c:get("rl.strikes"))
    end)

    it("rejects a nonsense config at load", function()
        local ok, err = pcall(boot, { rate = 0 })
        assert.is_false(ok)
        assert.matches("^plugins/ratelimit.lua:%d+: ratelimit:", err)
    end)
end)
