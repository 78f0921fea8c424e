-- roomcast.util: small helpers shared by boot, scripts and plugins.
--
-- Pure Lua over cjson; it never requires "roomcast", so the runtime module
-- (init.lua) may use it too (for example util.encode in conn:send_json).
--
--   util.array(t)                 mark t as a JSON array (so {} encodes as [])
--   util.encode(v)                cjson.encode that honours util.array on empty tables
--   util.send_error(conn, code, message[, id])
--   util.reply(conn, id, tbl)     send tbl as JSON, adding "id" when id ~= nil
--   util.valid_id(v)              is v usable as a request id (string <= 128 bytes or number)
--   util.sender(conn)             conn.user, or "conn-<id>" for anonymous connections
--   util.glob(pattern)            compile "game:*" style patterns to a matcher function
--   util.glob_match(pattern, s)   one-shot glob match

local cjson = require("cjson")
local errors = require("roomcast.errors")

local M = {}

local type, pairs, next, tostring = type, pairs, next, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local encode = cjson.encode

-- Debian's lua-cjson 2.1.0 has neither cjson.empty_array nor cjson.array_mt:
-- an empty table always encodes as {}. Newer cjson builds have array_mt; use
-- it when present so encoding is one cjson call.
local native_array_mt = cjson.array_mt
M.array_mt = native_array_mt or { __name = "roomcast.array" }

-- util.array(t) -> t (or a new table), marked so that util.encode writes it as
-- a JSON array even when empty. Non-empty arrays encode as arrays anyway.
function M.array(t)
    return setmetatable(t or {}, M.array_mt)
end

-- Walk v and swap every empty table marked by util.array for `token`,
-- remembering where, so the caller can put them back. Depth is bounded the
-- way cjson bounds it; deeper values make cjson raise its own error.
local function swap_empty_arrays(v, token, swaps, depth)
    if depth > 1000 then
        return
    end
    for k, child in pairs(v) do
        if type(child) == "table" then
            if next(child) == nil and getmetatable(child) == M.array_mt then
                swaps[#swaps + 1] = { v, k, child }
                v[k] = token
            else
                swap_empty_arrays(child, token, swaps, depth + 1)
            end
        end
    end
end

local function count_plain(s, needle)
    local n, pos = 0, 1
    while true do
        local a, b = s:find(needle, pos, true)
        if not a then
            return n
        end
        n, pos = n + 1, b + 1
    end
end

-- util.encode(v) -> JSON text. Raises like cjson.encode on values JSON cannot
-- hold (functions, sparse arrays, cycles). Empty tables marked with util.array
-- become [] instead of {}.
function M.encode(v)
    if native_array_mt or type(v) ~= "table" then
        return encode(v)
    end
    if next(v) == nil and getmetatable(v) == M.array_mt then
        return "[]"
    end
    -- Empty arrays are replaced by a random placeholder string, encoded, and
    -- the quoted placeholder is then replaced by []. The placeholder is only
    -- trusted when it occurs exactly as often as we put it in, so user data
    -- that happens to contain it makes us pick another one, never corrupts.
    for _ = 1, 8 do
        local token = string.format("__rc_empty_array_%08x%08x__",
            math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
        local swaps = {}
        swap_empty_arrays(v, token, swaps, 1)
        local ok, out = pcall(encode, v)
        for i = #swaps, 1, -1 do
            local s = swaps[i]
            s[1][s[2]] = s[3]
        end
        if not ok then
            error(out, 2)
        end
        if #swaps == 0 then
            return out
        end
        local quoted = '"' .. token .. '"'
        if count_plain(out, quoted) == #swaps then
            return (out:gsub(quoted, "[]"))
        end
    end
    error("util.encode: could not pick a placeholder for empty arrays", 2)
end

-- util.valid_id(v) -> true when v may be echoed as a request id.
function M.valid_id(v)
    local t = type(v)
    if t == "string" then
        return #v <= 128
    end
    return t == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

-- util.reply(conn, id, tbl) -> conn:send result. Adds tbl.id = id when id is
-- not nil (the caller validated it), then sends tbl as one JSON text frame.
function M.reply(conn, id, tbl)
    if id ~= nil then
        tbl.id = id
    end
    return conn:send(M.encode(tbl))
end

-- util.send_error(conn, code, message[, id]) -> conn:send result.
-- code must be one of roomcast.errors (raises otherwise: a programmer mistake);
-- message defaults to the code's default text.
function M.send_error(conn, code, message, id)
    if not errors.is_code(code) then
        error("util.send_error: unknown error code " .. tostring(code), 2)
    end
    local t = { type = "error", code = code, message = message or errors.message(code) }
    if id ~= nil and M.valid_id(id) then
        t.id = id
    end
    return conn:send(encode(t))
end

-- util.sender(conn) -> the name other clients see for conn.
function M.sender(conn)
    return conn.user or ("conn-" .. tostring(conn.id))
end

-- compiled globs by pattern; cleared when it grows past 1024 entries so
-- patterns from tokens (jwt "rooms" claims) cannot grow it without bound
local glob_cache, glob_count = {}, 0

-- util.glob(pattern) -> function(s) -> boolean.
-- `*` matches any run of bytes (including none); every other byte matches
-- itself. "lobby" matches only "lobby"; "game:*" matches "game:" and
-- "game:42"; "*" matches everything.
function M.glob(pattern)
    if type(pattern) ~= "string" then
        error("util.glob: pattern must be a string", 2)
    end
    local lp = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
    return function(s)
        return type(s) == "string" and s:find(lp) ~= nil
    end
end

function M.glob_match(pattern, s)
    local m = glob_cache[pattern]
    if not m then
        m = M.glob(pattern)
        if glob_count >= 1024 then
            glob_cache, glob_count = {}, 0
        end
        glob_cache[pattern], glob_count = m, glob_count + 1
    end
    return m(s)
end

-- util.no_trace(f): f runs interpreted. For the runners that always call
-- script or plugin hooks, which run interpreted (sandbox.lua): a trace
-- started in them could only abort when it reaches hook code, and each abort
-- unwinds the C stack (tens of thousands of instructions) until LuaJIT gives
-- up on the function. jit.off(nil) would switch the whole JIT off: f must be
-- a function.
local jit_off = jit and jit.off
function M.no_trace(f)
    if type(f) ~= "function" then
        error("no_trace: function expected, got " .. type(f), 2)
    end
    if jit_off then
        jit_off(f)
    end
    return f
end

return M
