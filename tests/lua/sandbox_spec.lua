package.path = "lua/?.lua;lua/?/init.lua;tests/lua/helpers/?.lua;" .. package.path

local fake = require("fake_roomcast")
local sandbox = require("roomcast.sandbox")

-- run Lua source in a fresh env; -> ok, result_or_error, env
local function run(src, env)
    env = env or sandbox.new_env({ name = "t" })
    local f, err = load(src, "=chunk", "t", env)
    assert(f, err)
    local ok, res = pcall(f)
    return ok, res, env
end

describe("roomcast.sandbox", function()
    local w
    before_each(function()
        w = fake.new()
    end)

    it("offers the safe base library", function()
        local ok, res = run([[
            local t = {}
            for i, v in ipairs({3, 1, 2}) do t[#t + 1] = v end
            table.sort(t)
            return string.format("%d%d%d %s %d %s %s", t[1], t[2], t[3], type(os.time()),
                math.max(1, 5), tostring(select("#", 1, 2)), bit.tohex(255, 2))
        ]])
        assert.is_true(ok, res)
        assert.are.equal("123 number 5 2 ff", res)
        local ok2, res2 = run("return type(os.clock()), type(os.date('!%Y')), coroutine.wrap(function() return 7 end)()")
        assert.is_true(ok2, res2)
    end)

    it("leaves out io, debug, jit, package, dofile, loadfile, getfenv, setfenv and os side effects", function()
        local _, res = run([[
            return { io = io, debug = debug, jit = jit, package = package, dofile = dofile,
                     loadfile = loadfile, getfenv = getfenv, setfenv = setfenv,
                     execute = os.execute, exit = os.exit, getenv = os.getenv, remove = os.remove,
                     collectgarbage = collectgarbage, newproxy = newproxy, module = module,
                     dump = string.dump }
        ]])
        assert.are.same({}, res)
    end)

    it("keeps script globals in the script's own env, never in the real _G", function()
        local ok, _, env = run([[
            leaked_global = 42
            _G.via_g = 1
            rawset(_G, "via_rawset", 2)
        ]])
        assert.is_true(ok)
        assert.is_nil(rawget(_G, "leaked_global"))
        assert.is_nil(rawget(_G, "via_g"))
        assert.is_nil(rawget(_G, "via_rawset"))
        assert.are.equal(42, env.leaked_global)
        assert.are.equal(2, env.via_rawset)
        assert.are.equal(env, env._G)
    end)

    it("gives every env its own library copies", function()
        local e1, e2 = sandbox.new_env(), sandbox.new_env()
        assert.is_true((run("string.upper = nil; math.pi = 3; table.insert = nil", e1)))
        assert.is_nil(e1.string.upper)
        assert.is_function(e2.string.upper)
        assert.is_function(string.upper)
        assert.are_not.equal(3, math.pi)
        local ok, res = run("return ('abc'):upper()", e1) -- string methods still work
        assert.is_true(ok)
        assert.are.equal("ABC", res)
    end)

    it("hides the shared string metatable but keeps getmetatable for tables", function()
        local ok, res = run([[
            local mt = {}
            local t = setmetatable({}, mt)
            return getmetatable("") == nil and getmetatable(t) == mt
        ]])
        assert.is_true(ok)
        assert.is_true(res)
    end)

    it("refuses bytecode in load and loadstring, and binds text chunks to the env", function()
        local env = sandbox.new_env()
        env.bytecode = string.dump(function() return 1 end)
        local ok, res = run([[
            local f1, e1 = load(bytecode)
            local f2, e2 = loadstring(bytecode)
            return { f1 == nil, e1, f2 == nil, e2 }
        ]], env)
        assert.is_true(ok, res)
        assert.is_true(res[1])
        assert.matches("mode", res[2])
        assert.is_true(res[3])
        assert.matches("mode", res[4])

        ok, res = run([[
            secret = "mine"
            local f = loadstring("inner = 5; return secret")
            return f()
        ]], env)
        assert.is_true(ok, res)
        assert.are.equal("mine", res)
        assert.are.equal(5, env.inner)
        assert.is_nil(rawget(_G, "inner"))
    end)

    it("allows roomcast, roomcast.*, cjson and bit through require", function()
        local ok, res = run([[
            local rc = require("roomcast")
            local cjson = require("cjson")
            local util = require("roomcast.util")
            local errors = require("roomcast.errors")
            return { rc.now(), cjson.encode({ a = 1 }), util.glob_match("g:*", "g:1"),
                     errors.not_member, require("bit").band(6, 3) }
        ]])
        assert.is_true(ok, res)
        assert.are.same({ w.clock, '{"a":1}', true, "not_member", 2 }, res)
    end)

    it("refuses every other module, including roomcast.ffi and the loader", function()
        for _, name in ipairs({ "io", "os", "debug", "ffi", "jit", "package", "lfs",
            "roomcast.ffi", "roomcast.boot", "roomcast.sandbox", "roomcast.x.y", "../etc" }) do
            local ok, err = run("return require(" .. string.format("%q", name) .. ")")
            assert.is_false(ok, name)
            assert.matches("not allowed in the sandbox", err, 1, true)
        end
    end)

    it("hands out read-only views of modules", function()
        local ok, err = run([[
            local rc = require("roomcast")
            rc.send_to_user = function() return 999 end
        ]])
        assert.is_false(ok)
        assert.matches("read%-only", err)
        assert.are_not.equal(999, w.rc.send_to_user("nobody", "x"))

        ok, err = run("require('cjson').encode = nil")
        assert.is_false(ok)
        assert.is_function(require("cjson").encode)
    end)

    it("routes print to rc.log.info with the env's name", function()
        run("print('hello', 1, nil)", sandbox.new_env({ name = "myplugin" }))
        assert.are.same({ level = "info", text = "[myplugin] hello\t1\tnil" }, w.logs[#w.logs])
    end)

    it("loads files as text with the env as globals", function()
        local path = os.tmpname()
        local f = io.open(path, "w")
        f:write("x = 1\nreturn { got = x }\n")
        f:close()
        local env = sandbox.new_env()
        local chunk = assert(sandbox.loadfile(path, env))
        assert.are.same({ got = 1 }, chunk())
        assert.are.equal(1, env.x)

        f = io.open(path, "wb")
        f:write(string.dump(function() return 1 end))
        f:close()
        local c2, err = sandbox.loadfile(path, env)
        assert.is_nil(c2)
        assert.matches("mode", err)
        os.remove(path)
    end)
end)
