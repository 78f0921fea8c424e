-- roomcast: the runtime module scripts and plugins use (lua/API.md), over
-- the C functions of core/lua/lapi.h called through the FFI.
--
--   local rc = require("roomcast")
--   rc.room("lobby"):publish(payload, { stamp = true })
--
-- C owns every connection and room. A handle is a small table holding only
-- an id (connections) or a name (rooms); every call looks the id up again in
-- C, so a stale handle answers nil, "closed" and never touches freed memory.
-- Calls return value | nil, err; they raise only for programmer mistakes
-- (wrong argument types).
--
-- The hot wrappers (send, publish, join, leave, get/set) stay JIT-compilable:
-- no closures, varargs or pcall on their paths, out-params preallocated.
--
-- Entry points for C (core/lua/lbridge.c): rc._boot(opts) loads everything
-- through roomcast.boot and returns the `entry` table whose functions C
-- calls with plain values (conn ids, strings).

local ffi = require("ffi")
local F = require("roomcast.ffi")
local cjson = require("cjson")
local util = require("roomcast.util")
local errors = require("roomcast.errors")

local C = F.C
local E = F.E
local type, tostring, tonumber, error, setmetatable = type, tostring, tonumber, error, setmetatable
local getmetatable = getmetatable
local select, ipairs, pcall = select, ipairs, pcall
local ffi_string, ffi_new = ffi.string, ffi.new
local fmt = string.format

local rc = {}
rc.json = cjson
rc.errors = errors
rc.config = {}
-- The server's store_errors option: "deliver" (publishes are never refused
-- for the history store) or "refuse" (a publish can be refused with
-- "unavailable"; only a waited publish, opts.wait, learns of it).
rc.store_errors = "deliver"

local worker_id, generation = 0, 1

-- scratch out-params (one state per thread: never shared between threads)
local out_str = ffi_new("const char *[1]")
local out_mstr = ffi_new("char *[1]")
local out_sz = ffi_new("size_t[1]")
local peer_buf = ffi_new("char[64]")
local scratch_cap = 4096
local scratch = ffi_new("char[?]", scratch_cap)

local ERRS = {
    [E.CLOSED] = "closed", [E.EXISTS] = "already_member", [E.NOT_FOUND] = "not_member",
    [E.LIMIT] = "limit", [E.NOMEM] = "nomem", [E.INVAL] = "invalid", [E.DENIED] = "remote",
}

-- ------------------------------------------------------ asynchronous calls
-- An API call that needs I/O takes a ticket from C and yields it; the worker
-- resumes this handler when the answer comes (core/lua/lcall.h). Where the
-- handler cannot wait (connect, save_state, module load) C gives no ticket.
local co_yield = coroutine.yield
local STORE_READ_MAX = 1000 -- core/ext/store.h

-- waits for ticket t (a number from an rc_ffi_* call); returns the answer
local function await(t)
    if t == 0 then
        return nil, "cannot_wait"
    end
    return co_yield(t)
end

local function err_of(code)
    return ERRS[code] or ("error " .. tostring(code))
end

-- t from an rc_ffi_*_wait call that a cluster bus answers: its answer, or
-- nil, "unavailable" (the bus is down) / nil, err
local function await_bus(t)
    if t == E.DENIED then return nil, "unavailable" end
    if t < 0 then return nil, err_of(t) end
    return await(t)
end

local function check_string(v, fname, argn)
    if type(v) ~= "string" then
        error(fmt("bad argument #%d to '%s' (string expected, got %s)", argn, fname, type(v)), 3)
    end
end

-- a scratch buffer of at least n bytes
local function scratch_of(n)
    if n > scratch_cap then
        scratch_cap = n
        scratch = ffi_new("char[?]", n)
    end
    return scratch, scratch_cap
end

-- "a\0b\0" -> { "a", "b" }
local function split_nul(buf, used)
    local s = ffi_string(buf, used)
    local out, pos = {}, 1
    while pos <= #s do
        local z = s:find("\0", pos, true)
        out[#out + 1] = s:sub(pos, z - 1)
        pos = z + 1
    end
    return out
end

-- calls f(buf, cap, out_sz) until the buffer was big enough
local function with_buffer(f, a, b)
    local buf, cap = scratch_of(1024)
    for _ = 1, 4 do
        local n = f(a, b, buf, cap, out_sz)
        if n ~= E.LIMIT then
            return n, buf
        end
        buf, cap = scratch_of(tonumber(out_sz[0]) + 64)
    end
    return E.LIMIT, buf
end

-- conn.data / room.data: a proxy whose metatable holds the handle. The two
-- metamethods are shared, not closures made per access: creating a closure
-- (FNEW) is NYI in LuaJIT 2.1 and would abort every trace through conn.data.
local function kv_index(p, k)
    return (getmetatable(p).obj:get(k))
end

local function kv_newindex(p, k, v)
    local ok, err = getmetatable(p).obj:set(k, v)
    if not ok and err ~= "closed" then
        error("data." .. tostring(k) .. ": " .. tostring(err), 2)
    end
end

local function kv_proxy(obj)
    return setmetatable({}, { __index = kv_index, __newindex = kv_newindex, obj = obj })
end

-- --------------------------------------------------------------- connections

local conn_methods = {}
local conn_mt = {}

-- Handles are read-only (conn.user writes through to C), so one per id
-- serves every event of that connection while anyone holds it (weak values):
-- a message costs a lookup here, not a new table.
local conn_handles = setmetatable({}, { __mode = "v" })

local function new_conn(id)
    local h = conn_handles[id]
    if h == nil then
        h = setmetatable({ id = id }, conn_mt)
        conn_handles[id] = h
    end
    return h
end

-- room:history{json = true}'s answer: the JSON array in a C buffer (a
-- userdata: no Lua string of up to 2 MB to intern). conn:send takes it as a
-- part; tostring() copies it into a string; :len() is its size in bytes;
-- :free() releases the buffer now (megabytes need not wait for the GC, which
-- sees a few bytes of userdata); any use after it raises an error.
local json_blob_mt = {}
local function live_ud(self, level)
    if self._ud == nil then
        error("the json buffer was freed", level + 1)
    end
    return self._ud
end
json_blob_mt.__index = {
    len = function(self)
        live_ud(self, 2)
        return self._len
    end,
    free = function(self)
        if self._ud ~= nil then
            C.rc_ffi_blob_free(self._ud)
            self._ud = nil
        end
    end,
}
json_blob_mt.__tostring = function(self)
    return ffi_string(C.rc_ffi_blob_data(live_ud(self, 2)), self._len)
end

local function part_of(v, argn)
    if type(v) == "string" then
        return v, #v
    elseif getmetatable(v) == json_blob_mt then
        return C.rc_ffi_blob_data(live_ud(v, 3)), v._len
    elseif v == nil then
        return "", 0
    end
    error(fmt("bad argument #%d to 'send' (string expected, got %s)", argn, type(v)), 3)
end

-- conn:send(text[, text2[, text3]]): one text frame; with more than one
-- argument the parts (strings, or a history json blob) are joined in C
-- into the one frame, without a concatenated Lua string.
function conn_methods:send(text, b, c)
    if b == nil and c == nil then
        check_string(text, "send", 1)
        local r = C.rc_ffi_send(self.id, text, #text, 0)
        if r == 0 then return true end
        return nil, err_of(r)
    end
    local p1, l1 = part_of(text, 1)
    if getmetatable(b) == json_blob_mt and getmetatable(text) ~= json_blob_mt
        and getmetatable(c) ~= json_blob_mt then
        -- (head, history json, tail): framed in the blob's own buffer
        local p3, l3 = part_of(c, 3)
        local r = C.rc_ffi_send_blob(self.id, p1, l1, live_ud(b, 2), p3, l3)
        if r == 0 then return true end
        return nil, err_of(r)
    end
    local p2, l2 = part_of(b, 2)
    local p3, l3 = part_of(c, 3)
    local r = C.rc_ffi_send3(self.id, p1, l1, p2, l2, p3, l3, 0)
    if r == 0 then return true end
    return nil, err_of(r)
end

function conn_methods:send_binary(bytes)
    check_string(bytes, "send_binary", 1)
    local r = C.rc_ffi_send(self.id, bytes, #bytes, 1)
    if r == 0 then return true end
    return nil, err_of(r)
end

function conn_methods:send_json(tbl)
    if type(tbl) ~= "table" then
        error("bad argument #1 to 'send_json' (table expected, got " .. type(tbl) .. ")", 2)
    end
    local s = util.encode(tbl)
    local r = C.rc_ffi_send(self.id, s, #s, 0)
    if r == 0 then return true end
    return nil, err_of(r)
end

function conn_methods:close(code, reason)
    if code ~= nil and type(code) ~= "number" then
        error("bad argument #1 to 'close' (number expected, got " .. type(code) .. ")", 2)
    end
    reason = reason ~= nil and tostring(reason) or ""
    local r = C.rc_ffi_close(self.id, code or 1000, reason, #reason)
    if r == 0 then return true end
    return nil, err_of(r)
end

-- conn:join(name[, opts]) -> true | nil, err[, code, message]
-- The on_join chain (plugins, route, script) runs first and may deny:
-- nil, "denied", code, message. opts.hold = true: the room's messages are
-- held for this member until conn:release(name, after) (a recovering join:
-- read the store, send joined and the replay, then release; README "Recovery").
function conn_methods:join(name, opts)
    check_string(name, "join", 1)
    local hold = opts ~= nil and opts.hold
    local id = self.id
    local r = C.rc_ffi_in_room(id, name, #name)
    if r < 0 then return nil, err_of(r) end
    if r == 1 then return nil, "already_member" end
    local chain = rc._chain
    if chain then
        local ok, code, msg = chain.join_chain(self, rc.room(name))
        if ok == false then
            return nil, "denied", code, msg
        end
    end
    if hold then
        r = C.rc_ffi_join_held(id, name, #name)
    else
        r = C.rc_ffi_join(id, name, #name)
    end
    if r ~= 0 then return nil, err_of(r) end
    return true
end

-- conn:hold_intact(name) -> true | false | nil, err. For a member joined with
-- hold: true while every message since its join is held; false once more
-- than recover_hold came (some were dropped: answer recovered=false).
-- nil, "not_found" when the connection does not wait in that room.
function conn_methods:hold_intact(name)
    check_string(name, "hold_intact", 1)
    local r = C.rc_ffi_hold_state(self.id, name, #name)
    if r < 0 then return nil, err_of(r) end
    return r == 1
end

-- conn:release(name, after) -> n | nil, err. Ends a held join: queues the held
-- messages with a seq greater than `after` (n of them), in seq order, after
-- whatever this handler sent already; from then on the member gets the room's
-- messages as any member does. nil, "not_found" when it does not wait.
function conn_methods:release(name, after)
    check_string(name, "release", 1)
    if type(after) ~= "number" then
        error("bad argument #2 to 'release' (number expected, got " .. type(after) .. ")", 2)
    end
    local r = C.rc_ffi_release(self.id, name, #name, after)
    if r < 0 then return nil, err_of(r) end
    return tonumber(r)
end

-- conn:leave(name) -> true | nil, err. C leaves first; then on_leave runs.
function conn_methods:leave(name)
    check_string(name, "leave", 1)
    local r = C.rc_ffi_leave(self.id, name, #name)
    if r ~= 0 then return nil, err_of(r) end
    local chain = rc._chain
    if chain then
        chain.leave_chain(self, rc.room(name))
    end
    return true
end

-- one function for every call (a closure made per call is NYI for the JIT)
local function conn_rooms_into(id, _, b, cap, used)
    return C.rc_ffi_conn_rooms(id, b, cap, used)
end

function conn_methods:rooms()
    local n, buf = with_buffer(conn_rooms_into, self.id)
    if n < 0 then return nil, err_of(n) end
    return split_nul(buf, tonumber(out_sz[0]))
end

function conn_methods:in_room(name)
    check_string(name, "in_room", 1)
    return C.rc_ffi_in_room(self.id, name, #name) == 1
end

function conn_methods:get(key)
    check_string(key, "get", 1)
    local r = C.rc_ffi_conn_get(self.id, key, #key, out_str, out_sz)
    if r ~= 0 then return nil, err_of(r) end
    if out_str[0] == nil then return nil end
    return ffi_string(out_str[0], out_sz[0])
end

function conn_methods:set(key, value)
    check_string(key, "set", 1)
    local r
    if value == nil then
        r = C.rc_ffi_conn_set(self.id, key, #key, nil, 0)
    else
        if type(value) ~= "string" then
            error("bad argument #2 to 'set' (string or nil expected, got " .. type(value) .. ")", 2)
        end
        r = C.rc_ffi_conn_set(self.id, key, #key, value, #value)
    end
    if r ~= 0 then return nil, err_of(r) end
    return true
end

local function conn_user(id)
    if C.rc_ffi_get_user(id, out_str, out_sz) ~= 0 or out_str[0] == nil then
        return nil
    end
    return ffi_string(out_str[0], out_sz[0])
end

conn_mt.__index = function(self, k)
    local m = conn_methods[k]
    if m ~= nil then return m end
    if k == "user" then
        return conn_user(self.id)
    elseif k == "peer" then
        local n = C.rc_ffi_peer(self.id, peer_buf, 64)
        if n < 0 then return nil end
        return ffi_string(peer_buf, n)
    elseif k == "data" then
        return kv_proxy(self)
    end
    return nil
end

conn_mt.__newindex = function(self, k, v)
    if k ~= "user" then
        error("conn handle: field '" .. tostring(k) .. "' is read-only", 2)
    end
    local r
    if v == nil then
        r = C.rc_ffi_set_user(self.id, nil, 0)
    elseif type(v) == "string" then
        r = C.rc_ffi_set_user(self.id, v, #v)
    else
        error("conn.user must be a string or nil", 2)
    end
    if r == E.INVAL then
        error("conn.user must be 1 to 256 bytes", 2)
    end
end

conn_mt.__tostring = function(self)
    return "conn " .. tostring(self.id)
end

-- --------------------------------------------------------------------- rooms

local room_methods = {}
local room_mt = {}

-- Scripts and plugins run interpreted (sandbox.lua), so room:publish, the
-- hottest call, runs in LuaJIT's interpreter too (a trace through it would
-- return into script code and abort): its FFI function is looked up once,
-- not in ffi.C's namespace per call.
local ffi_publish = C.rc_ffi_publish

-- room:publish(payload[, opts]) -> 0 | nil, err
-- 0: queued; the room actor assigns the seq later (with opts.stamp it is
-- spliced into the JSON; opts.wait waits for it and returns it).
function room_methods:publish(payload, opts)
    if type(payload) ~= "string" then
        check_string(payload, "publish", 1)
    end
    local flags, exclude, wait = 0, 0, false
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #2 to 'publish' (table expected, got " .. type(opts) .. ")", 2)
        end
        if opts.binary then flags = flags + F.PUB_BINARY end
        if opts.stamp then flags = flags + F.PUB_STAMP end
        local ex = opts.exclude
        if type(ex) == "table" then ex = ex.id end
        if type(ex) == "number" then exclude = ex end
        wait = opts.wait
    end
    local name = self.name
    if wait then
        -- waits for the room's answer: seq | nil, "unavailable" (store_errors = "refuse")
        local t = C.rc_ffi_publish_wait(name, #name, payload, #payload, flags, exclude)
        if t == E.DENIED then return nil, "unavailable" end -- the cluster bus is down
        if t < 0 then return nil, err_of(t) end
        return await(t)
    end
    local r = ffi_publish(name, #name, payload, #payload, flags, exclude)
    if r == 0 then return 0 end
    if r == E.DENIED then return nil, "unavailable" end -- the cluster bus is down
    return nil, err_of(r)
end

function room_methods:count()
    local name = self.name
    return tonumber(C.rc_ffi_room_count(name, #name))
end

function room_methods:members()
    local name = self.name
    local cap = tonumber(C.rc_ffi_room_count(name, #name)) + 16
    for _ = 1, 4 do
        local ids = ffi_new("uint64_t[?]", cap)
        local n = tonumber(C.rc_ffi_room_members(name, #name, ids, cap))
        if n <= cap then
            local out = {}
            for i = 0, n - 1 do out[i + 1] = tonumber(ids[i]) end
            return out
        end
        cap = n + 16
    end
    return {}
end

function room_methods:presence()
    -- a cluster bus answers for every node (the handler waits); one node:
    -- the room's membership here
    local t = C.rc_ffi_room_presence_wait(self.name, #self.name)
    if t ~= E.NOT_FOUND then return await_bus(t) end
    local n, buf = with_buffer(function(name, len, b, cap, used)
        return C.rc_ffi_room_presence(name, len, b, cap, used)
    end, self.name, #self.name)
    if n < 0 then return {}, nil, 0 end
    return split_nul(buf, tonumber(out_sz[0])), nil, self:count()
end

-- room:presence_count() -> count | nil, err: the room's connections, with a
-- user id or without; a cluster bus answers for every node (the handler
-- waits; no member crosses the wire, so it stays cheap for big rooms);
-- one node: room:count()
function room_methods:presence_count()
    local t = C.rc_ffi_room_count_wait(self.name, #self.name)
    if t ~= E.NOT_FOUND then return await_bus(t) end
    return self:count()
end

-- room:history([since[, limit]]) or room:history{since=, before=, limit=, newest=}
--   -> msgs, info | nil, err. Waits for the history store (the handler yields).
--   msgs: { {seq=, ts=, payload=, binary=true|nil}, ... } oldest first
--   info: { last_seq=, epoch= } the room's, at the read
--   err: "cannot_wait" (connect), "timeout", "unavailable", "invalid", "closed"
-- With json = true the answer is  json, info, n  instead: json is a blob (C
--   memory) holding the JSON array "[...]" of the text entries that are JSON
--   objects, spliced as stored (binary entries and other texts are skipped),
--   n how many. conn:send(head, json, tail) sends it in one frame without a
--   Lua string; tostring(json) gives the text. Built in C: for answers too
--   large to be worth a table (chat.lua's history).
function room_methods:history(a, b)
    local since, before, limit, newest, json
    if type(a) == "table" then
        since, before, limit, newest, json = a.since, a.before, a.limit, a.newest, a.json
    else
        since, limit = a, b
    end
    since, before, limit = since or 0, before or 0, limit or STORE_READ_MAX
    if type(since) ~= "number" then
        error("bad argument 'since' to 'history' (number expected, got " .. type(since) .. ")", 2)
    end
    if type(before) ~= "number" then
        error("bad argument 'before' to 'history' (number expected, got " .. type(before) .. ")", 2)
    end
    if type(limit) ~= "number" then
        error("bad argument 'limit' to 'history' (number expected, got " .. type(limit) .. ")", 2)
    end
    if since < 0 then since = 0 end
    if limit < 1 then limit = 1 elseif limit > STORE_READ_MAX then limit = STORE_READ_MAX end
    local name = self.name
    local t = C.rc_ffi_room_read(name, #name, since, before, limit,
        (newest and F.READ_NEWEST or 0) + (json and F.READ_JSON or 0))
    if t < 0 then
        return nil, t == E.CLOSED and "closed" or err_of(t)
    end
    if not json then
        return await(t)
    end
    local ud, info, n, len = await(t)
    if not ud then
        return nil, info
    end
    return setmetatable({ _ud = ud, _len = len }, json_blob_mt), info, n
end

-- room:last_seq() -> seq, epoch | nil, err (waits, like history)
function room_methods:last_seq()
    local msgs, info = self:history({ since = 2 ^ 53, limit = 1 })
    if not msgs then
        return nil, info
    end
    return info.last_seq, info.epoch
end

-- The names and numbers of RC_ENUM_slow in core/app/options.h (enum
-- slow_policy); tests/unit/test_options.c checks that they agree.
local POLICIES = { drop = 0, close = 1, latest = 2 }

-- The slow-consumer policy for this room's deliveries: "drop" (skip data
-- frames for a member over its send-queue limits), "close" (1008) or
-- "latest" (keep only the newest pending message of this room).
function room_methods:set_policy(policy)
    local p = POLICIES[policy]
    if p == nil then
        error("room:set_policy: expected \"drop\", \"close\" or \"latest\"", 2)
    end
    local name = self.name
    local r = C.rc_ffi_room_set_policy(name, #name, p)
    if r ~= 0 then return nil, err_of(r) end
    return true
end

function room_methods:get(key)
    check_string(key, "room:get", 1)
    local name = self.name
    local r = C.rc_ffi_room_get(name, #name, key, #key, out_mstr, out_sz)
    if r ~= 0 then return nil, err_of(r) end
    local p = out_mstr[0]
    if p == nil then return nil end
    local v = ffi_string(p, out_sz[0])
    C.rc_ffi_free(p)
    return v
end

function room_methods:set(key, value)
    check_string(key, "room:set", 1)
    local name = self.name
    local r
    if value == nil then
        r = C.rc_ffi_room_set(name, #name, key, #key, nil, 0)
    else
        if type(value) ~= "string" then
            error("bad argument #2 to 'room:set' (string or nil expected, got " .. type(value) ..
                ")", 2)
        end
        r = C.rc_ffi_room_set(name, #name, key, #key, value, #value)
    end
    if r ~= 0 then return nil, err_of(r) end
    return true
end

-- A plain table, not a function: room:publish and the other methods are
-- found by the interpreter itself, with no metamethod call per lookup. The
-- one property, room.data, is a field each handle gets when made (rc.room).
room_mt.__index = room_methods

room_mt.__newindex = function(_, k)
    error("room handle: field '" .. tostring(k) .. "' is read-only", 2)
end

room_mt.__tostring = function(self)
    return "room " .. self.name
end

-- -------------------------------------------------------------------- module

function rc.conn(id)
    if type(id) ~= "number" then
        error("bad argument #1 to 'roomcast.conn' (number expected, got " .. type(id) .. ")", 2)
    end
    return new_conn(id)
end

-- Handles are read-only, so one per name serves every caller while anyone
-- holds it (weak values: the GC takes handles nobody holds).
local room_handles = setmetatable({}, { __mode = "v" })

function rc.room(name)
    local h = room_handles[name]
    if h ~= nil then
        return h
    end
    check_string(name, "roomcast.room", 1)
    h = setmetatable({ name = name }, room_mt)
    rawset(h, "data", kv_proxy(h))
    room_handles[name] = h
    return h
end

function rc.send_to_user(user, payload, is_binary)
    check_string(user, "send_to_user", 1)
    check_string(payload, "send_to_user", 2)
    local bin = is_binary and 1 or 0
    -- cluster: the bus's answer (nodes it reached); the handler waits
    local t = C.rc_ffi_send_to_user_wait(user, #user, payload, #payload, bin)
    if t ~= E.NOT_FOUND then
        if t == E.DENIED then return nil, "unavailable" end
        if t > 0 then return await(t) end
        if t < 0 then return nil, err_of(t) end
    end
    local n = C.rc_ffi_send_to_user(user, #user, payload, #payload, bin)
    if n == E.DENIED then return nil, "unavailable" end
    return n < 0 and 0 or tonumber(n)
end

local function logger(level)
    local lv = F.LOG[level]
    return function(f, ...)
        check_string(f, "log." .. level, 1)
        local s = select("#", ...) > 0 and fmt(f, ...) or f
        C.rc_ffi_log(lv, s, #s)
    end
end
rc.log = { debug = logger("debug"), info = logger("info"), warn = logger("warn"),
    error = logger("error") }

function rc.now()
    return C.rc_ffi_now()
end

function rc.worker_id()
    return worker_id
end

rc._await = await

-- rc._end_holds(raised): the chain (boot.lua) is about to answer for a
-- handler that raised or refused: the held joins that handler left waiting
-- end now, so that the answer is not taken for part of a replay (lua/API.md
-- "Held joins").
function rc._end_holds(raised)
    C.rc_ffi_end_holds(raised and 1 or 0)
end

-- rc.sleep(ms) -> true | nil, "cannot_wait" | nil, "timeout"
function rc.sleep(ms)
    if type(ms) ~= "number" or ms < 0 then
        error(fmt("bad argument #1 to 'sleep' (non-negative number expected, got %s)",
            tostring(ms)), 2)
    end
    return await(C.rc_ffi_sleep(ms))
end

function rc.generation()
    return generation
end

-- ----------------------------------------------------------------------- JWT
-- The C half of roomcast.jwt (lua/roomcast/jwt.lua; core/proto/jwt.h).

local JWT_CAP = 16384
local jwt_buf = ffi_new("char[?]", JWT_CAP)
local jwt_err = ffi_new("char[256]")
local jwt_jwk = ffi_new("struct jwt_jwk")

local jwt_reasons, jwt_reason_id, jwt_algs = {}, {}, {}
for i = 1, 64 do
    local p = C.rc_ffi_jwt_name(0, i)
    if p == nil then break end
    jwt_reasons[i] = ffi_string(p)
    jwt_reason_id[jwt_reasons[i]] = i
end
for i = 0, 31 do
    local p = C.rc_ffi_jwt_name(1, i)
    if p == nil then break end
    jwt_algs[ffi_string(p)] = i
end

local function jwt_result(r, len)
    if r == 0 then
        return ffi_string(jwt_buf, len)
    end
    return nil, jwt_reasons[-r] or "malformed"
end

local function jwt_added(r)
    if r == 0 then return 0 end
    if r == 1 then return 1, ffi_string(jwt_err) end
    return nil, ffi_string(jwt_err)
end

local function set_str(field, v)
    if v == nil then
        field.p, field.len = nil, 0
    else
        field.p, field.len = v, #v
    end
end

local jwt_backend = {
    reasons = jwt_reasons,
    algs = jwt_algs,
    new_keyset = function(mask)
        return ffi.gc(C.rc_ffi_jwt_keyset_new(mask), C.rc_ffi_jwt_keyset_free)
    end,
    add_secret = function(ks, secret)
        return jwt_added(C.rc_ffi_jwt_add_secret(ks, nil, 0, secret, #secret, jwt_err, 256))
    end,
    add_pem = function(ks, pem)
        return jwt_added(C.rc_ffi_jwt_add_pem(ks, nil, 0, pem, #pem, jwt_err, 256))
    end,
    add_jwk = function(ks, jwk)
        -- the strings stay referenced by `jwk` until the call returns
        for _, f in ipairs({ "kty", "crv", "kid", "alg", "use", "n", "e", "x", "y" }) do
            set_str(jwt_jwk[f], jwk[f])
        end
        jwt_jwk.has_private = jwk.has_private and 1 or 0
        local r = C.rc_ffi_jwt_add_jwk(ks, jwt_jwk, jwt_err, 256)
        for _, f in ipairs({ "kty", "crv", "kid", "alg", "use", "n", "e", "x", "y" }) do
            set_str(jwt_jwk[f], nil)
        end
        return jwt_added(r)
    end,
    header = function(token)
        return jwt_result(C.rc_ffi_jwt_header(token, #token, jwt_buf, JWT_CAP, out_sz),
            out_sz[0])
    end,
    verify = function(ks, alg, kid, token)
        return jwt_result(C.rc_ffi_jwt_verify(ks, alg, kid, kid and #kid or 0, token, #token,
            jwt_buf, JWT_CAP, out_sz), out_sz[0])
    end,
    refused = function(reason)
        C.rc_ffi_jwt_refused(jwt_reason_id[reason] or 0)
    end,
    now = function()
        return C.rc_ffi_now() / 1000
    end,
    read_file = function(path)
        local f, err = io.open(path, "rb")
        if not f then
            return nil, "cannot read " .. tostring(err)
        end
        local text = f:read(1024 * 1024 + 1)
        f:close()
        if text == nil then
            return nil, "cannot read " .. path .. ": empty file"
        end
        if #text > 1024 * 1024 then
            return nil, "cannot read " .. path .. ": larger than 1 MiB"
        end
        return text
    end,
    warn = function(msg)
        rc.log.warn("%s", msg)
    end,
}

-- rc.jwt.verifier(opts) / rc.jwt.verify(token, secret[, opts]) (lua/API.md)
rc.jwt = require("roomcast.jwt").make(jwt_backend)

-- ------------------------------------------------------------ entry for C

local function unescape(s)
    s = s:gsub("%+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=x%20y" -> { a = "1", b = "x y" } (the first of repeated names wins)
local function parse_query(q)
    local args = {}
    if q == nil or q == "" then return args end
    for part in q:gmatch("[^&]+") do
        local k, v = part:match("^([^=]*)=(.*)$")
        if not k then k, v = part, "" end
        k = unescape(k)
        if k ~= "" and args[k] == nil then
            args[k] = unescape(v)
        end
    end
    return args
end
rc._parse_query = parse_query

local function decode_config(s)
    if s == nil then return {} end
    local v = cjson.decode(s)
    if type(v) ~= "table" then return {} end
    return v
end

-- rc._check_plugins(o): `roomcast -t` (lbridge_check_plugins). Loads only
-- the plugins of o (as rc._boot would), so their setup -- jwt_auth reading
-- its key files -- runs once; raises "file:line: msg" on the first failure.
function rc._check_plugins(o)
    local plugins = {}
    for i, p in ipairs(o.plugins or {}) do
        plugins[i] = { name = p.name, path = p.path, config = decode_config(p.config_json) }
    end
    rc.config = decode_config(o.config_json)
    require("roomcast.boot").load_plugins(plugins)
    return true
end

-- rc._boot(o) -> entry. o (built by lbridge.c): script, plugins = { {name, path,
-- config_json} }, routes = { {pattern, script} }, config_json, old_state,
-- worker_id, generation, store_errors. Raises "file:line: msg" when anything
-- fails to load.
function rc._boot(o)
    rc.store_errors = o.store_errors or "deliver"
    worker_id = o.worker_id or 0
    generation = o.generation or 1
    local config = decode_config(o.config_json)
    rc.config = config
    local plugins = {}
    for i, p in ipairs(o.plugins or {}) do
        plugins[i] = { name = p.name, path = p.path, config = decode_config(p.config_json) }
    end
    local handlers = require("roomcast.boot").load({
        script = o.script, plugins = plugins, routes = o.routes or {}, config = config,
        old_state = o.old_state,
    })
    local connect, message, disconnect = handlers.connect, handlers.message, handlers.disconnect
    local tick, save_state = handlers.tick, handlers.save_state
    local entry = {}
    function entry.connect(id, path, query, headers, peer)
        local req = { path = path, query = query, args = parse_query(query), headers = headers,
            peer = peer }
        local ok, status, reason = connect(new_conn(id), req)
        if ok == false then
            return false, tonumber(status) or 403, reason ~= nil and tostring(reason) or "Forbidden"
        end
        return true
    end
    function entry.message(id, data, is_binary)
        message(new_conn(id), data, is_binary)
    end
    function entry.disconnect(id, code, reason)
        disconnect(new_conn(id), code, reason)
    end
    function entry.tick(now)
        tick(now)
    end
    function entry.save_state()
        return save_state()
    end
    entry.api_publish = handlers.api_publish
    -- they always end in script code (util.no_trace)
    util.no_trace(entry.connect)
    util.no_trace(entry.message)
    util.no_trace(entry.disconnect)
    util.no_trace(entry.tick)
    return entry
end

return rc
