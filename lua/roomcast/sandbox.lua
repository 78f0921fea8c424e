-- roomcast.sandbox: the environments scripts and plugins run in.
--
-- Like Redis's scripting, the environment is an allow-list: a script sees
-- only the globals below, and each script or plugin gets its own fresh table,
-- so its globals never reach the real _G nor another script.
--
--   sandbox.new_env([opts])          -> env       opts.name labels print() output
--   sandbox.loadfile(path, env)      -> chunk | nil, "path:line: message"
--   sandbox.ALLOWED_MODULES          names `require` accepts besides roomcast.*
--   sandbox.DENIED_MODULES           roomcast.* names it refuses (FFI, loader)
--
-- What is left out and why:
--   io, os.execute/exit/getenv/remove/rename/tmpname, package, debug, jit, ffi,
--   dofile, loadfile  -- file, process and C access
--   getfenv, setfenv  -- getfenv(0) would hand back the real _G
--   load/loadstring of bytecode -- bytecode can break out of the VM; text
--                        chunks are allowed and bound to the caller's env
--   collectgarbage, newproxy, gcinfo, module -- global side effects
--   getmetatable("") -- the shared string metatable (its __index is the real
--                        string library); getmetatable of other values works
-- Library tables (string, table, math, os, coroutine, bit) are copies per env,
-- so `string.format = nil` in one script breaks nobody else. Modules returned
-- by `require` are read-only views: a script cannot replace rc.send_to_user for
-- the plugins that run beside it.

local M = {}

local real_require = require
local real_load = load
local type, error, pairs, tostring, select = type, error, pairs, tostring, select
local setmetatable, getmetatable = setmetatable, getmetatable

M.ALLOWED_MODULES = {
    ["roomcast"] = true,
    ["cjson"] = true,
    ["cjson.safe"] = true,
    ["bit"] = true,
}

-- roomcast.* modules that must not be reachable from scripts
M.DENIED_MODULES = {
    ["roomcast.ffi"] = true, -- ffi.C: raw C access
    ["roomcast.boot"] = true, -- could rebuild the chain
    ["roomcast.sandbox"] = true,
}

local function copy(t, skip)
    local c = {}
    for k, v in pairs(t) do
        if not (skip and skip[k]) then
            c[k] = v
        end
    end
    return c
end

local function module_allowed(name)
    if M.ALLOWED_MODULES[name] then
        return true
    end
    return name:find("^roomcast%.[%w_]+$") ~= nil and not M.DENIED_MODULES[name]
end

local function readonly(name, mod)
    return setmetatable({}, {
        __index = mod,
        __newindex = function(_, k)
            error("module '" .. name .. "' is read-only (assigning " .. tostring(k) .. ")", 2)
        end,
        __metatable = false,
    })
end

local function make_require(env)
    local cache = {}
    return function(name)
        if type(name) ~= "string" then
            error("bad argument #1 to 'require' (string expected)", 2)
        end
        local mod = cache[name]
        if mod ~= nil then
            return mod
        end
        if not module_allowed(name) then
            error("module '" .. name .. "' is not allowed in the sandbox", 2)
        end
        mod = real_require(name)
        if type(mod) == "table" then
            mod = readonly(name, mod)
        end
        cache[name] = mod
        return mod
    end
end

-- LuaJIT runs no debug hooks inside compiled traces, so a loop the JIT
-- compiled could never be stopped by C's instruction budget
-- (core/lua/lcall.h). Script and plugin code (and every function nested in
-- it) therefore runs interpreted; the roomcast.* modules stay compiled.
local jit_off = jit and jit.off
local function interpreted(chunk, err)
    if chunk and jit_off then
        jit_off(chunk, true)
    end
    return chunk, err
end

local function make_load(env)
    -- load(chunk[, chunkname[, mode[, e]]]): text only; binds to env unless
    -- the caller gives another table.
    local function sandboxed_load(chunk, chunkname, _, e)
        if type(chunk) ~= "string" and type(chunk) ~= "function" then
            error("bad argument #1 to 'load' (string or function expected)", 2)
        end
        if e ~= nil and type(e) ~= "table" then
            error("bad argument #4 to 'load' (table expected)", 2)
        end
        return interpreted(real_load(chunk, chunkname, "t", e or env))
    end
    local function sandboxed_loadstring(s, chunkname)
        if type(s) ~= "string" then
            error("bad argument #1 to 'loadstring' (string expected)", 2)
        end
        return interpreted(real_load(s, chunkname, "t", env))
    end
    return sandboxed_load, sandboxed_loadstring
end

local function safe_getmetatable(v)
    if type(v) == "string" then
        return nil
    end
    return getmetatable(v)
end

-- sandbox.new_env([opts]) -> a fresh environment table.
-- opts.name: label for print(), which goes to rc.log.info ("[name] ...").
-- The table is the script's _G: globals it defines land here.
function M.new_env(opts)
    local name = opts and opts.name or "script"
    local env = {
        _VERSION = _VERSION,
        assert = assert,
        error = error,
        ipairs = ipairs,
        next = next,
        pairs = pairs,
        pcall = pcall,
        xpcall = xpcall,
        rawequal = rawequal,
        rawget = rawget,
        rawset = rawset, -- only reaches tables the script can see; _G is env
        select = select,
        setmetatable = setmetatable,
        getmetatable = safe_getmetatable,
        tonumber = tonumber,
        tostring = tostring,
        type = type,
        unpack = unpack,
        string = copy(string, { dump = true }),
        table = copy(table),
        math = copy(math),
        coroutine = copy(coroutine),
        bit = copy(real_require("bit")),
        os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime },
    }
    env._G = env
    env.require = make_require(env)
    env.load, env.loadstring = make_load(env)
    env.print = function(...)
        local n = select("#", ...)
        local parts = {}
        for i = 1, n do
            parts[i] = tostring((select(i, ...)))
        end
        local ok, rc = pcall(real_require, "roomcast")
        local line = "[" .. name .. "] " .. table.concat(parts, "\t")
        if ok and type(rc) == "table" and rc.log and rc.log.info then
            rc.log.info("%s", line)
        end
    end
    return env
end

-- sandbox.loadfile(path, env) -> chunk | nil, err
-- Loads a text chunk (bytecode files are refused) with env as its globals.
-- err is Lua's own "path:line: message" for syntax errors.
function M.loadfile(path, env)
    if type(path) ~= "string" then
        error("bad argument #1 to 'sandbox.loadfile' (string expected)", 2)
    end
    if type(env) ~= "table" then
        error("bad argument #2 to 'sandbox.loadfile' (table expected)", 2)
    end
    return interpreted(loadfile(path, "t", env))
end

return M
