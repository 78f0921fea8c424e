package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")
local cjson = require("cjson")

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir) == 0)

local function file(name, src)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(src)
    f:close()
    return path
end

-- A plugin/script that records every hook call into the shared `calls` list
-- (an upvalue the fixture reaches through rc.config.calls) and behaves as
-- rc.config.behave[name][hook] says.
local RECORDER = [[
local rc = require("roomcast")
local name = select(2, ...) or "script"
local calls = rc.config.calls
local function behave(hook, ...)
    local b = rc.config.behave and rc.config.behave[name] and rc.config.behave[name][hook]
    if type(b) == "function" then return b(...) end
    if type(b) == "table" then return unpack(b) end
    return b
end
local function rec(hook)
    return function(...)
        local args = { ... }
        calls[#calls + 1] = { who = name, hook = hook, args = args }
        return behave(hook, ...)
    end
end
return {
    name = name,
    on_connect = rec("on_connect"), on_message = rec("on_message"),
    on_join = rec("on_join"), on_leave = rec("on_leave"),
    on_disconnect = rec("on_disconnect"), on_tick = rec("on_tick"),
]]

local recorder = file("recorder.lua", RECORDER .. "}\n")

local function hooks_of(calls, hook)
    local out = {}
    for _, c in ipairs(calls) do
        if c.hook == hook then out[#out + 1] = c.who end
    end
    return out
end

describe("roomcast.boot", function()
    local w, calls, behave

    teardown(function()
        os.execute("rm -rf " .. dir)
    end)

    local function boot(extra)
        local opts = {
            script = recorder,
            plugins = {
                { name = "p1", path = recorder, config = {} },
                { name = "p2", path = recorder, config = {} },
            },
            config = { calls = calls, behave = behave },
        }
        for k, v in pairs(extra or {}) do opts[k] = v end
        return w:boot(opts)
    end

    before_each(function()
        w = fake.new()
        calls, behave = {}, {}
    end)

    describe("loading", function()
        it("returns the handlers and hooks them into the runtime as rc._chain", function()
            local h = boot()
            for _, k in ipairs({ "connect", "message", "disconnect", "tick", "save_state",
                "join_chain", "leave_chain" }) do
                assert.is_function(h[k], k)
            end
            assert.are.equal(h, w.rc._chain)
        end)

        it("passes config and name to plugin chunks and opts.config to the script", function()
            local p = file("args.lua", [[
                local config, name = ...
                seen = { config = config, name = name }
                return { on_tick = function() require("roomcast").config.out[name or "script"] = seen end }
            ]])
            local out = {}
            local h = w:boot({ script = p, plugins = { { name = "pp", path = p, config = { k = 1 } } },
                config = { out = out, s = 2 } })
            h.tick(0)
            assert.are.same({ k = 1 }, out.pp.config)
            assert.are.equal("pp", out.pp.name)
            assert.are.equal(2, out.script.config.s)
            assert.is_nil(out.script.name)
            assert.are.equal(w.rc.config.s, 2)
        end)

        it("raises Lua's file:line message for a syntax error", function()
            local p = file("syntax.lua", "return {\n on_message = function( \n")
            local ok, err = pcall(w.boot, w, { script = p })
            assert.is_false(ok)
            assert.matches("^" .. p:gsub("%p", "%%%0") .. ":%d+: ", err)
        end)

        it("raises file:line for an error while running the chunk", function()
            local p = file("runtime.lua", "local x = nil\nreturn x.y\n")
            local ok, err = pcall(w.boot, w, { script = p })
            assert.is_false(ok)
            assert.matches(p:gsub("%p", "%%%0") .. ":2: attempt to index", err)
        end)

        it("refuses a chunk that does not return a table, or a hook that is not a function", function()
            local p = file("notable.lua", "return 42\n")
            local ok, err = pcall(w.boot, w, { script = p })
            assert.is_false(ok)
            assert.are.equal(p .. ": script must return a table of hooks (got number)", err)

            p = file("badhook.lua", "return { on_message = 'nope' }\n")
            ok, err = pcall(w.boot, w, { script = p })
            assert.is_false(ok)
            assert.are.equal(p .. ": hook on_message must be a function (got string)", err)
        end)

        it("refuses a missing file, a missing script, an unnamed or duplicate plugin", function()
            local ok, err = pcall(w.boot, w, { script = dir .. "/missing.lua" })
            assert.is_false(ok)
            assert.matches("missing.lua", err)

            ok, err = pcall(w.boot, w, { plugins = {} })
            assert.is_false(ok)
            assert.matches("opts.script", err)

            ok, err = pcall(w.boot, w, { script = recorder, plugins = { { path = recorder } } })
            assert.is_false(ok)
            assert.matches("plugin #1 needs a name", err)

            ok, err = pcall(w.boot, w, { script = recorder, plugins = {
                { name = "a", path = recorder }, { name = "a", path = recorder } } })
            assert.is_false(ok)
            assert.matches("listed twice", err)
        end)

        it("does not replace the running chain when a load fails", function()
            local h = boot()
            pcall(w.boot, w, { script = file("bad.lua", "return nil") })
            assert.are.equal(h, w.rc._chain)
        end)

        it("loads each unit into its own sandbox", function()
            local a = file("ga.lua", "shared = 'a'\nreturn { on_tick = function() require('roomcast').config.got.a = shared end }")
            local b = file("gb.lua", "return { on_tick = function() require('roomcast').config.got.b = tostring(shared) end }")
            local got = {}
            local h = w:boot({ script = b, plugins = { { name = "a", path = a } }, config = { got = got } })
            h.tick(1)
            assert.are.same({ a = "a", b = "nil" }, got)
            assert.is_nil(rawget(_G, "shared"))
        end)
    end)

    describe("connect", function()
        it("runs plugins in config order, then the script", function()
            boot()
            assert.truthy(w:connect())
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_connect"))
        end)

        it("stops at a plugin that refuses, with its status and reason", function()
            behave.p1 = { on_connect = { false, 401, "no token" } }
            boot()
            local c, status, reason = w:connect()
            assert.is_nil(c)
            assert.are.equal(401, status)
            assert.are.equal("no token", reason)
            assert.are.same({ "p1" }, hooks_of(calls, "on_connect"))
        end)

        it("defaults a bare refusal to 403 Forbidden", function()
            behave.script = { on_connect = { false } }
            boot()
            local c, status, reason = w:connect()
            assert.is_nil(c)
            assert.are.equal(403, status)
            assert.are.equal("Forbidden", reason)
        end)
    end)

    describe("message", function()
        it("decodes a JSON object once and hands the same table to every hook", function()
            boot()
            local c = w:connect()
            w:send(c, ' {"type":"x","id":7}')
            local msgs = {}
            for _, call in ipairs(calls) do
                if call.hook == "on_message" then
                    msgs[#msgs + 1] = call.args[4]
                    assert.are.equal(' {"type":"x","id":7}', call.args[2])
                    assert.is_false(call.args[3])
                end
            end
            assert.are.equal(3, #msgs)
            assert.are.same({ type = "x", id = 7 }, msgs[1])
            assert.are.equal(msgs[1], msgs[2])
            assert.are.equal(msgs[1], msgs[3])
        end)

        it("passes msg = nil for invalid JSON, non-objects and binary frames", function()
            boot()
            local c = w:connect()
            w:send(c, "{nope")
            w:send(c, "[1,2]")
            w:send(c, '"str"')
            w:send(c, '{"type":"x"}', true)
            local n = 0
            for _, call in ipairs(calls) do
                if call.hook == "on_message" and call.who == "script" then
                    n = n + 1
                    assert.is_nil(call.args[4])
                end
            end
            assert.are.equal(4, n)
        end)

        it("skips decoding when every message hook says decode_json = false", function()
            local p = file("raw.lua", [[
                return { decode_json = false, on_message = function(c, d, b, msg)
                    require("roomcast").config.got[#require("roomcast").config.got + 1] = msg == nil
                end }
            ]])
            local got = {}
            local h = w:boot({ script = p, plugins = { { name = "r", path = p } }, config = { got = got } })
            h.message(w:connect(), '{"type":"x"}', false)
            assert.are.same({ true, true }, got)
        end)

        it("stops at a plugin's false, code, message and tells the client, echoing id", function()
            behave.p1 = { on_message = { false, "rate_limited", "slow down" } }
            boot()
            local c = w:connect()
            w:send(c, '{"type":"x","id":"r1"}')
            assert.are.same({ "p1" }, hooks_of(calls, "on_message"))
            assert.are.same({ { type = "error", code = "rate_limited", message = "slow down", id = "r1" } },
                w:take(c))
        end)

        it("stops silently at a bare false (the plugin handled the message)", function()
            behave.p2 = { on_message = { false } }
            boot()
            local c = w:connect()
            w:send(c, '{"type":"x"}')
            assert.are.same({ "p1", "p2" }, hooks_of(calls, "on_message"))
            assert.are.same({}, w:take(c))
        end)

        it("continues on true or nothing", function()
            behave.p1 = { on_message = { true } }
            boot()
            w:send(w:connect(), "hello")
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_message"))
        end)

        it("answers handler_error when a hook raises, then re-raises with file:line", function()
            local p = file("throws.lua", "return { on_message = function()\n  error('boom')\nend }\n")
            w:boot({ script = p })
            local c = w:connect()
            local ok, err = pcall(w.send, w, c, '{"type":"x","id":5}')
            assert.is_false(ok)
            assert.matches(p:gsub("%p", "%%%0") .. ":2: boom", err)
            local out = w:take(c)
            assert.are.equal(1, #out)
            assert.are.equal("error", out[1].type)
            assert.are.equal("handler_error", out[1].code)
            assert.are.equal(5, out[1].id)
            assert.is_nil(out[1].message:find("throws.lua", 1, true)) -- no paths to clients
        end)

        -- lua/API.md "Held joins": the held joins a failing or refusing
        -- handler left open end (rc._end_holds, C) before the chain's answer,
        -- so that answer does not count as part of a replay.
        it("ends the handler's held joins before answering an error or a refusal", function()
            local p = file("holds.lua", "return { on_message = function(conn, data)\n" ..
                "  if data == 'raise' then error('boom') end\n" ..
                "  if data == 'refuse' then return false, 'unavailable', 'later' end\n" ..
                "  if data == 'quiet' then return false end\n" ..
                "end }\n")
            w:boot({ script = p })
            local c = w:connect()
            local seen = {}
            w.rc._end_holds = function(raised)
                seen[#seen + 1] = { raised = raised, sent_before = #w:raw(c) }
            end
            assert.is_false(pcall(w.send, w, c, "raise"))
            assert.are.same({ { raised = true, sent_before = 0 } }, seen)
            assert.are.equal("handler_error", w:take(c)[1].code) -- the answer came after
            w:send(c, "refuse")
            assert.are.same({ raised = nil, sent_before = 0 }, seen[2])
            assert.are.equal("unavailable", w:take(c)[1].code)
            w:send(c, "quiet") -- a bare false answers nothing: the call's end does it
            w:send(c, "other")
            assert.are.equal(2, #seen)
        end)
    end)

    describe("join and leave chains", function()
        it("conn:join runs on_join in order and C joins only if all allow", function()
            boot()
            local c = w:connect()
            assert.is_true(c:join("lobby"))
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_join"))
            assert.are.equal("lobby", calls[#calls].args[2].name)
            assert.is_true(c:in_room("lobby"))
        end)

        it("a denial makes conn:join return nil, 'denied', code, message", function()
            behave.p2 = { on_join = { false, "forbidden_room", "not you" } }
            boot()
            local c = w:connect()
            assert.are.same({ nil, "denied", "forbidden_room", "not you" }, { c:join("vip") })
            assert.is_false(c:in_room("vip"))
            assert.are.same({ "p1", "p2" }, hooks_of(calls, "on_join"))
        end)

        it("a bare denial gets forbidden_room and a default message", function()
            behave.script = { on_join = { false } }
            local h = boot()
            local ok, code, msg = h.join_chain(w:connect(), "vip")
            assert.is_false(ok)
            assert.are.equal("forbidden_room", code)
            assert.are.equal("joining 'vip' is not allowed", msg)
        end)

        it("conn:leave runs on_leave after the membership is gone", function()
            local seen
            behave.script = { on_leave = function(conn, room) seen = { conn:in_room(room.name), room:count() } end }
            boot()
            local c = w:connect()
            c:join("lobby")
            assert.is_true(c:leave("lobby"))
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_leave"))
            assert.are.same({ false, 0 }, seen)
        end)
    end)

    describe("routes", function()
        local routed
        before_each(function()
            routed = file("routed.lua", RECORDER:gsub('or "script"', 'or "route"') .. "}\n")
        end)

        local function boot_routes()
            return boot({ routes = {
                { pattern = "game:*", script = routed },
                { pattern = "game:special", script = recorder }, -- shadowed: first match wins
            } })
        end

        it("runs a route's on_join/on_leave only for matching rooms", function()
            boot_routes()
            local c = w:connect()
            c:join("lobby")
            c:join("game:1")
            c:leave("game:1")
            c:join("game:special")
            assert.are.same({ "p1", "p2", "script", "p1", "p2", "route", "script",
                "p1", "p2", "route", "script" }, hooks_of(calls, "on_join"))
            assert.are.same({ "p1", "p2", "route", "script" }, hooks_of(calls, "on_leave"))
        end)

        it("runs a route's on_message only for messages whose room_id matches", function()
            boot_routes()
            local c = w:connect()
            w:send(c, '{"type":"x","room_id":"lobby"}')
            w:send(c, '{"type":"x","room_id":"game:7"}')
            w:send(c, '{"type":"x"}')
            w:send(c, '{"type":"x","room_id":5}')
            assert.are.same({ "p1", "p2", "script", "p1", "p2", "route", "script",
                "p1", "p2", "script", "p1", "p2", "script" }, hooks_of(calls, "on_message"))
        end)

        it("lets a route stop the chain before the main script", function()
            behave.route = { on_message = { false, "bad_request", "not now" } }
            boot_routes()
            local c = w:connect()
            w:send(c, '{"type":"x","room_id":"game:7"}')
            assert.are.same({ "p1", "p2", "route" }, hooks_of(calls, "on_message"))
            assert.are.equal("bad_request", w:take(c)[1].code)
        end)
    end)

    describe("disconnect and tick", function()
        it("leaves every room through the chain, then runs on_disconnect everywhere", function()
            boot()
            local c = w:connect()
            c:join("a")
            c:join("b")
            w:disconnect(c, 1001, "going away")
            assert.are.same({ "p1", "p2", "script", "p1", "p2", "script" }, hooks_of(calls, "on_leave"))
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_disconnect"))
            local last = calls[#calls]
            assert.are.same({ 1001, "going away" }, { last.args[2], last.args[3] })
            assert.are.equal(0, w.rc.room("a"):count())
        end)

        it("runs every on_disconnect even when one raises, then re-raises the first error", function()
            behave.p1 = { on_disconnect = function() error("p1 broke", 0) end }
            boot()
            local c = w:connect()
            local ok, err = pcall(w.disconnect, w, c)
            assert.is_false(ok)
            assert.are.equal("p1 broke", err)
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_disconnect"))
        end)

        it("ticks every unit with the time, even past a failing one", function()
            behave.p2 = { on_tick = function() error("tick broke", 0) end }
            local h = boot()
            local ok, err = pcall(h.tick, 1234)
            assert.is_false(ok)
            assert.are.equal("tick broke", err)
            assert.are.same({ "p1", "p2", "script" }, hooks_of(calls, "on_tick"))
            assert.are.equal(1234, calls[1].args[1])
        end)
    end)

    describe("state across reloads", function()
        local stateful
        before_each(function()
            stateful = file("stateful.lua", [[
                local config, pname = ...
                local name = pname or config.tag or "script"
                local n = 0
                local log = require("roomcast").config.reloads
                return {
                    on_tick = function() n = n + 1 end,
                    save_state = function() return { n = n, who = name } end,
                    on_reload = function(old) log[#log + 1] = { name = name, old = old } end,
                }
            ]])
        end)

        it("saves one JSON document namespaced by unit and hands each its own part", function()
            local reloads = {}
            local opts = { script = stateful, plugins = { { name = "pa", path = stateful } },
                routes = { { pattern = "r:*", script = stateful, config = { tag = "route" } } },
                config = { reloads = reloads } }
            local h = w:boot(opts)
            h.tick(1)
            h.tick(2)
            local saved = h.save_state()
            assert.are.same({
                plugins = { pa = { n = 2, who = "pa" } },
                routes = { ["r:*"] = { n = 2, who = "route" } },
                script = { n = 2, who = "script" },
            }, cjson.decode(saved))
            assert.are.same({}, reloads) -- no old_state: on_reload is not called

            w:reload(opts)
            assert.are.same({
                { name = "pa", old = { n = 2, who = "pa" } },
                { name = "route", old = { n = 2, who = "route" } },
                { name = "script", old = { n = 2, who = "script" } },
            }, reloads)
        end)

        it("returns nil when no unit has state", function()
            assert.is_nil(boot().save_state())
        end)

        it("raises when a state is not JSON-serialisable", function()
            local p = file("badstate.lua", "return { save_state = function() return { f = print } end }")
            local h = w:boot({ script = p })
            local ok, err = pcall(h.save_state)
            assert.is_false(ok)
            assert.matches("not JSON%-serialisable", err)
        end)

        it("fails the load when on_reload raises, and survives an undecodable old_state", function()
            local p = file("badreload.lua", "return { on_reload = function()\n error('no') end }")
            local ok, err = pcall(w.boot, w, { script = p, old_state = "{}" })
            assert.is_false(ok)
            assert.matches("badreload.lua:2: no", err)

            local reloads = {}
            w:boot({ script = stateful, old_state = "not json", config = { reloads = reloads } })
            assert.are.same({ { name = "script" } }, reloads)
            assert.are.equal("warn", w.logs[#w.logs].level)
        end)
    end)
    describe("api_publish", function()
        it("runs the script's on_api_publish with the room, body and sender", function()
            local p = file("api.lua", [[
                return { on_api_publish = function(room, body, sender)
                    if body.raw then return "plain text", { stamp = false } end
                    if body.deny then return nil, "forbidden_room", "no" end
                    return { room = room.name, got = body.x, by = sender }
                end }
            ]])
            local h = w:boot({ script = p })
            local payload, stamp = h.api_publish("r", '{"x":7}', "ops")
            assert.are.equal(1, stamp)
            assert.are.same({ room = "r", got = 7, by = "ops" }, require("cjson").decode(payload))
            payload, stamp = h.api_publish("r", '{"raw":true}', "ops")
            assert.are.equal("plain text", payload)
            assert.are.equal(0, stamp)
            local nothing, code, msg = h.api_publish("r", '{"deny":true}', "ops")
            assert.is_nil(nothing)
            assert.are.equal("forbidden_room", code)
            assert.are.equal("no", msg)
        end)

        it("says no_publish_hook when the script has none", function()
            local h = w:boot({ script = file("none.lua", "return {}") })
            local p, code = h.api_publish("r", "{}", "server")
            assert.is_nil(p)
            assert.are.equal("no_publish_hook", code)
        end)

        it("raises when the hook returns something that is not text or a table", function()
            local h = w:boot({ script = file("bad.lua",
                "return { on_api_publish = function() return 5 end }") })
            assert.has_error(function() h.api_publish("r", "{}", "server") end)
        end)
    end)
end)
