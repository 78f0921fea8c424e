-- An in-memory fake of the C side of the roomcast Lua API (lua/API.md) for
-- busted specs. It implements the whole `require("roomcast")` module
-- (connections with an outbox of sent frames, rooms with seq / history /
-- presence / KV, the user index, publish with seq+ts splicing, rc.jwt.verify
-- with real HS256) plus driver methods that play the part of C: connect a
-- client, deliver a frame, disconnect, tick the clock.
--
--   local fake = require("fake_roomcast")
--   local w = fake.new({ config = {...}, now = 1700000000000 })
--       -- installs w.rc as package.loaded["roomcast"]
--   w:boot({ script = "scripts/chat.lua", plugins = {...} })  -- roomcast.boot.load
--   local c = w:connect({ args = {}, headers = {} })            -- nil, status, reason if refused
--   w:send(c, '{"type":"join","room_id":"lobby"}')              -- handlers.message
--   w:take(c)        -- decoded JSON frames sent to c since the last take
--   w:disconnect(c)  -- handlers.disconnect, then C-side cleanup
--   w:tick(1000)     -- advance the clock by 1000 ms and run handlers.tick
--
-- Like C, the fake delivers a publish to every member synchronously (there is
-- no room actor here), so a sender sees its own broadcast before its ack.

local cjson = require("cjson")

-- room:history{json = true}'s blob: tostring, :len and :free as the real one
-- (C memory there); any use after free raises
local blob_mt = {}
local function blob_live(b)
    if b.text == nil then error("the json buffer was freed", 3) end
    return b.text
end
blob_mt.__index = {
    len = function(self) return #blob_live(self) end,
    free = function(self) self.text = nil end,
}
blob_mt.__tostring = function(self) return blob_live(self) end
local function new_blob(text)
    return setmetatable({ text = text }, blob_mt)
end
local function blob_text(v)
    if getmetatable(v) == blob_mt then return blob_live(v) end
    return v
end
local hs256 = require("hs256")

local M = {}

local World = {}
World.__index = World

local function check_type(v, want, fname, argn)
    if type(v) ~= want then
        error(string.format("bad argument #%d to '%s' (%s expected, got %s)", argn, fname, want,
            type(v)), 3)
    end
end

local function remove_value(list, v)
    for i = #list, 1, -1 do
        if list[i] == v then
            table.remove(list, i)
        end
    end
end

local function kv_proxy(get, set)
    return setmetatable({}, {
        __index = function(_, k) return get(k) end,
        __newindex = function(_, k, v) set(k, v) end,
    })
end

local function check_kv(key, value, fname)
    check_type(key, "string", fname, 1)
    if value ~= nil and type(value) ~= "string" then
        error("bad argument #2 to '" .. fname .. "' (string or nil expected, got " .. type(value)
            .. ")", 3)
    end
end

-- --------------------------------------------------------------------------
-- connection handles

local function make_conn_mt(w)
    local methods = {}

    local function live(self)
        local st = w.conns[self.id]
        if st and not st.closing then
            return st
        end
        return nil
    end

    local function push(st, data, binary)
        if #data > w.max_message then
            return nil, "too_big"
        end
        st.outbox[#st.outbox + 1] = { data = data, binary = binary }
        return true
    end

    -- conn:send(text[, b[, c]]): C joins the parts (strings or a history
    -- json blob: the fake's blob is a table holding the string) into one frame
    function methods:send(text, b, c)
        check_type(text, "string", "send", 1)
        b = blob_text(b)
        if b ~= nil then check_type(b, "string", "send", 2) end
        if c ~= nil then check_type(c, "string", "send", 3) end
        text = text .. (b or "") .. (c or "")
        local st = live(self)
        if not st then return nil, "closed" end
        return push(st, text, false)
    end

    function methods:send_binary(bytes)
        check_type(bytes, "string", "send_binary", 1)
        local st = live(self)
        if not st then return nil, "closed" end
        return push(st, bytes, true)
    end

    function methods:send_json(tbl)
        check_type(tbl, "table", "send_json", 1)
        local st = live(self)
        if not st then return nil, "closed" end
        return push(st, cjson.encode(tbl), false)
    end

    function methods:close(code, reason)
        local st = w.conns[self.id]
        if not st then return nil, "closed" end
        if not st.closing then
            st.closing = true
            st.close_code = code or 1000
            st.close_reason = reason or ""
        end
        return true
    end

    function methods:join(name, opts)
        check_type(name, "string", "join", 1)
        local st = live(self)
        if not st then return nil, "closed" end
        if st.rooms[name] then return nil, "already_member" end
        local chain = w.rc._chain
        if chain then
            local ok, code, msg = chain.join_chain(self, w.rc.room(name))
            if ok == false then
                return nil, "denied", code, msg
            end
        end
        -- the chain may have closed the connection
        st = live(self)
        if not st then return nil, "closed" end
        local room = w:room_state(name)
        st.rooms[name] = true
        st.room_order[#st.room_order + 1] = name
        room.members[#room.members + 1] = self.id
        if opts ~= nil and opts.hold then
            -- like C (room_join_ex ROOM_JOIN_HOLD): a member whose deliveries
            -- wait until release, up to recover_hold
            st.held = st.held or {}
            st.held[name] = { frames = {}, lost = false }
        end
        return true
    end

    function methods:hold_intact(name)
        check_type(name, "string", "hold_intact", 1)
        local st = live(self)
        if not st then return nil, "closed" end
        local h = st.held and st.held[name]
        if not h then return nil, "not_found" end
        return not h.lost
    end

    function methods:release(name, after)
        check_type(name, "string", "release", 1)
        check_type(after, "number", "release", 2)
        local st = live(self)
        if not st then return nil, "closed" end
        local h = st.held and st.held[name]
        if not h then return nil, "not_found" end
        st.held[name] = nil
        local n = 0
        for _, f in ipairs(h.frames) do
            if f.seq > after then
                st.outbox[#st.outbox + 1] = { data = f.data, binary = f.binary }
                n = n + 1
            end
        end
        return n
    end

    function methods:leave(name)
        check_type(name, "string", "leave", 1)
        local st = w.conns[self.id]
        if not st then return nil, "closed" end
        if not st.rooms[name] then return nil, "not_member" end
        st.rooms[name] = nil
        if st.held then st.held[name] = nil end
        remove_value(st.room_order, name)
        remove_value(w.rooms[name].members, self.id)
        local chain = w.rc._chain
        if chain then
            chain.leave_chain(self, w.rc.room(name))
        end
        return true
    end

    function methods:rooms()
        local st = w.conns[self.id]
        if not st then return nil, "closed" end
        local out = {}
        for i, n in ipairs(st.room_order) do out[i] = n end
        return out
    end

    function methods:in_room(name)
        check_type(name, "string", "in_room", 1)
        local st = w.conns[self.id]
        return st ~= nil and st.rooms[name] == true
    end

    function methods:get(key)
        check_type(key, "string", "get", 1)
        local st = w.conns[self.id]
        if not st then return nil, "closed" end
        return st.kv[key]
    end

    function methods:set(key, value)
        check_kv(key, value, "set")
        local st = w.conns[self.id]
        if not st then return nil, "closed" end
        st.kv[key] = value
        return true
    end

    return {
        __index = function(self, k)
            if k == "user" then
                local st = w.conns[rawget(self, "id")]
                return st and st.user
            elseif k == "peer" then
                local st = w.conns[rawget(self, "id")]
                return st and st.peer
            elseif k == "data" then
                return kv_proxy(function(key) return self:get(key) end,
                    function(key, v) self:set(key, v) end)
            end
            return methods[k]
        end,
        __newindex = function(self, k, v)
            if k ~= "user" then
                error("conn handle: field '" .. tostring(k) .. "' is read-only", 2)
            end
            if v ~= nil and type(v) ~= "string" then
                error("conn.user must be a string or nil", 2)
            end
            local st = w.conns[rawget(self, "id")]
            if st then
                st.user = v
            end
        end,
    }
end

-- --------------------------------------------------------------------------
-- room handles

local function make_room_mt(w)
    local methods = {}

    function methods:set_policy(policy)
        local ok = ({ drop = true, close = true, latest = true })[policy]
        if not ok then
            error("room:set_policy: expected \"drop\", \"close\" or \"latest\"", 2)
        end
        self.policy = policy
        return true
    end

    function methods:publish(payload, opts)
        check_type(payload, "string", "publish", 1)
        if opts ~= nil then check_type(opts, "table", "publish", 2) end
        opts = opts or {}
        local room = w:room_state(self.name)
        if #payload > w.max_message then return nil, "too_big" end
        if w.publish_error then
            -- like C: the room refuses it; only a waited publish hears of it
            w.refused = (w.refused or 0) + 1
            if opts.wait then return nil, w.publish_error end
            return true
        end
        local seq = room.seq + 1
        local ts = w.clock
        if opts.stamp then
            local body = payload:match("^(.-)%s*}%s*$")
            if not body or not payload:find("^%s*{") then
                return nil, "not_object"
            end
            local sep = body:find("^%s*{%s*$") and "" or ","
            payload = string.format('%s%s"seq":%d,"ts":%d}', body, sep, seq, ts)
        end
        room.seq = seq
        room.history[#room.history + 1] = { seq = seq, ts = ts, payload = payload,
            binary = opts.binary and true or nil }
        while #room.history > w.history_max do
            table.remove(room.history, 1)
        end
        for _, id in ipairs(room.members) do
            local st = w.conns[id]
            local h = st and st.held and st.held[self.name]
            if h and id ~= opts.exclude then
                local cap = tonumber(w.rc.config.recover_hold) or 4096
                if #h.frames >= cap then
                    h.frames, h.lost = {}, true
                else
                    h.frames[#h.frames + 1] = { seq = seq, data = payload,
                        binary = opts.binary and true or false }
                end
            elseif id ~= opts.exclude and st and not st.closing then
                st.outbox[#st.outbox + 1] = { data = payload, binary = opts.binary and true or false }
            end
        end
        w.published[#w.published + 1] = { room = self.name, seq = seq, payload = payload,
            wait = opts.wait and true or false }
        if opts.wait then return seq end -- C waits for the room's answer
        return true -- like C: queued; seq is assigned by the room actor
    end

    function methods:count()
        local room = w.rooms[self.name]
        return room and #room.members or 0
    end

    function methods:members()
        local room = w.rooms[self.name]
        local out = {}
        for i, id in ipairs(room and room.members or {}) do out[i] = id end
        return out
    end

    function methods:presence()
        local room = w.rooms[self.name]
        local out, seen = {}, {}
        for _, id in ipairs(room and room.members or {}) do
            local u = w.conns[id] and w.conns[id].user
            if u and not seen[u] then
                seen[u] = true
                out[#out + 1] = u
            end
        end
        -- w.cluster_presence = {users = {...}, count = n}: a cluster bus's
        -- answer (every node's users and connections)
        if w.cluster_presence then
            return w.cluster_presence.users, nil, w.cluster_presence.count
        end
        return out, nil, #(room and room.members or {})
    end

    function methods:presence_count()
        if w.cluster_presence then
            return w.cluster_presence.count
        end
        local room = w.rooms[self.name]
        return #(room and room.members or {})
    end

    -- room:history(since, limit) or room:history{since=, before=, limit=, newest=}
    -- -> msgs, info ({last_seq=, epoch=}) | nil, err. C waits for the store;
    -- the fake answers at once (w.history_error makes it fail).
    function methods:history(x, y)
        local since, before, limit, newest, json
        if type(x) == "table" then
            since, before, limit, newest, json = x.since, x.before, x.limit, x.newest, x.json
        else
            since, limit = x, y
            if since ~= nil then check_type(since, "number", "history", 1) end
            if limit ~= nil then check_type(limit, "number", "history", 2) end
        end
        since, before, limit = since or 0, before or 0, limit or 1000
        if limit < 1 or limit > 1000 then error("room:history: limit must be 1..1000", 2) end
        if w.history_error then return nil, w.history_error end
        w.history_reads = (w.history_reads or 0) + 1
        local room = w.rooms[self.name]
        local match = {}
        for _, e in ipairs(room and room.history or {}) do
            if e.seq > since and (before == 0 or e.seq < before) then
                match[#match + 1] = { seq = e.seq, ts = e.ts, payload = e.payload, binary = e.binary }
            end
        end
        local from, to = 1, math.min(#match, limit)
        if newest and #match > limit then from, to = #match - limit + 1, #match end
        local out = {}
        for i = from, to do out[#out + 1] = match[i] end
        if json then
            -- like C's RC_READ_JSON: text entries that are {...} objects,
            -- spliced as stored into one array string; n how many
            local parts = {}
            for _, e in ipairs(out) do
                local p = e.payload
                if not e.binary and #p >= 2 and p:sub(1, 1) == "{" and p:sub(-1) == "}" then
                    parts[#parts + 1] = p
                end
            end
            return new_blob("[" .. table.concat(parts, ",") .. "]"), { last_seq = room and room.seq or 0,
                epoch = room and room.epoch or w.epoch_of(self.name) }, #parts
        end
        return out, { last_seq = room and room.seq or 0,
            epoch = room and room.epoch or w.epoch_of(self.name) }
    end

    -- room:last_seq() -> seq, epoch | nil, err (waits in C)
    function methods:last_seq()
        if w.history_error then return nil, w.history_error end
        local room = w.rooms[self.name]
        return room and room.seq or 0, room and room.epoch or w.epoch_of(self.name)
    end

    function methods:get(key)
        check_type(key, "string", "room:get", 1)
        local room = w.rooms[self.name]
        return room and room.kv[key]
    end

    function methods:set(key, value)
        check_kv(key, value, "room:set")
        w:room_state(self.name).kv[key] = value
        return true
    end

    return {
        __index = function(self, k)
            if k == "data" then
                return kv_proxy(function(key) return self:get(key) end,
                    function(key, v) self:set(key, v) end)
            end
            return methods[k]
        end,
        __newindex = function(_, k)
            error("room handle: field '" .. tostring(k) .. "' is read-only", 2)
        end,
    }
end

-- --------------------------------------------------------------------------
-- the module

-- The C half of roomcast.jwt (core/proto/jwt.c), faked for the specs: HS256
-- tokens are really checked (hs256.lua); keys of the other kinds are only
-- recorded (w.jwt_keys), so a token of another algorithm gets no_key. The
-- reason and algorithm lists are core/proto/jwt.h's, in its order
-- (jwt_auth_spec checks them against the header).
M.JWT_REASONS = { "malformed", "too_big", "bad_alg", "unsupported_crit", "unknown_kid",
    "no_key", "bad_signature", "expired", "not_yet_valid", "issued_in_future", "missing_iat",
    "too_old", "bad_issuer", "bad_audience", "bad_subject", "bad_claim" }
M.JWT_ALGS = { "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384",
    "EdDSA" }

function M.jwt_backend(w)
    local algs = {}
    for i, a in ipairs(M.JWT_ALGS) do
        algs[a] = i - 1
    end
    w.jwt_refusals = w.jwt_refusals or {}
    w.jwt_keys = w.jwt_keys or {}
    return {
        reasons = M.JWT_REASONS,
        algs = algs,
        new_keyset = function(mask)
            return { mask = mask, secrets = {} }
        end,
        add_secret = function(ks, secret)
            ks.secrets[#ks.secrets + 1] = secret
            return 0
        end,
        add_pem = function(_, pem)
            if pem:find("PRIVATE KEY", 1, true) then
                return nil, "the PEM holds a private key; give the public key only"
            end
            if not pem:find("-----BEGIN PUBLIC KEY-----", 1, true) then
                return nil, "no PEM public key or certificate found"
            end
            w.jwt_keys[#w.jwt_keys + 1] = { pem = pem }
            return 0
        end,
        add_jwk = function(_, jwk)
            if jwk.kty ~= "RSA" and jwk.kty ~= "EC" and jwk.kty ~= "OKP" then
                return 1, "JWK of a kty other than RSA, EC or OKP skipped"
            end
            if jwk.has_private then
                return nil, "JWK holds private key material; publish the public key only"
            end
            w.jwt_keys[#w.jwt_keys + 1] = jwk
            return 0
        end,
        header = function(token)
            local h64 = token:match("^([%w_%-]+)%.[%w_%-]+%.[%w_%-]+$")
            local h = h64 and hs256.b64url_decode(h64)
            if not h then
                return nil, "malformed"
            end
            return h
        end,
        verify = function(ks, alg, _, token)
            local h64, p64, s64 = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
            local p, sig = hs256.b64url_decode(p64), hs256.b64url_decode(s64)
            if not (p and sig) then
                return nil, "malformed"
            end
            if alg ~= 0 or #ks.secrets == 0 then
                return nil, "no_key"
            end
            for _, secret in ipairs(ks.secrets) do
                if hs256.hmac_sha256(secret, h64 .. "." .. p64) == sig then
                    return p
                end
            end
            return nil, "bad_signature"
        end,
        refused = function(reason)
            w.jwt_refusals[reason] = (w.jwt_refusals[reason] or 0) + 1
        end,
        now = function()
            return w.clock / 1000
        end,
        read_file = function(path)
            local f, err = io.open(path, "rb")
            if not f then
                return nil, "cannot read " .. tostring(err)
            end
            local text = f:read("*a")
            f:close()
            return text
        end,
        warn = function(msg)
            w.logs[#w.logs + 1] = { level = "warn", text = msg }
        end,
    }
end

local function make_module(w, opts)
    local rc = {}
    local conn_mt, room_mt = make_conn_mt(w), make_room_mt(w)

    rc.json = cjson
    rc.errors = require("roomcast.errors")
    rc.config = opts.config or {}
    rc.store_errors = opts.store_errors or "deliver"

    local function logger(level)
        return function(fmt, ...)
            check_type(fmt, "string", "log." .. level, 1)
            w.logs[#w.logs + 1] = { level = level, text = string.format(fmt, ...) }
        end
    end
    rc.log = { debug = logger("debug"), info = logger("info"), warn = logger("warn"),
        error = logger("error") }

    function rc.now() return w.clock end
    function rc.worker_id() return 0 end
    function rc.generation() return w.generation end

    function rc.conn(id)
        check_type(id, "number", "roomcast.conn", 1)
        return setmetatable({ id = id }, conn_mt)
    end

    function rc.room(name)
        check_type(name, "string", "roomcast.room", 1)
        return setmetatable({ name = name }, room_mt)
    end

    function rc.send_to_user(user, payload, is_binary)
        check_type(user, "string", "send_to_user", 1)
        check_type(payload, "string", "send_to_user", 2)
        local n = 0
        for id = 1, w.next_id - 1 do
            local st = w.conns[id]
            if st and st.user == user and not st.closing then
                st.outbox[#st.outbox + 1] = { data = payload, binary = is_binary and true or false }
                n = n + 1
            end
        end
        return n
    end

    rc.jwt = require("roomcast.jwt").make(M.jwt_backend(w))
    return rc
end

-- fake.new([opts]) -> world. opts: config, now (ms), history_max, max_message
function M.new(opts)
    opts = opts or {}
    local w = setmetatable({
        conns = {}, rooms = {}, next_id = 1, logs = {}, published = {},
        clock = opts.now or 1700000000000, generation = 1,
        history_max = opts.history_max or 1000,
        max_message = opts.max_message or 1024 * 1024,
    }, World)
    -- every room's epoch (a store makes it random; tests may replace it)
    w.epoch_of = opts.epoch_of or function(name) return "ep-" .. name end
    w.rc = make_module(w, opts)
    package.loaded["roomcast"] = w.rc
    return w
end

function World:room_state(name)
    local r = self.rooms[name]
    if not r then
        r = { name = name, seq = 0, history = {}, members = {}, kv = {},
            epoch = self.epoch_of(name) }
        self.rooms[name] = r
    end
    return r
end

-- world:boot(opts) -> handlers (roomcast.boot.load with this fake installed)
function World:boot(opts)
    package.loaded["roomcast"] = self.rc
    self.handlers = require("roomcast.boot").load(opts)
    return self.handlers
end

-- world:reload(opts) -> handlers: save_state of the current generation, then
-- boot a new one with old_state, as C does on SIGHUP. Connections, rooms and
-- their KV stay (they are C's).
function World:reload(opts)
    local saved = self.handlers and self.handlers.save_state()
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.old_state = saved
    local h = self:boot(o)
    self.generation = self.generation + 1
    return h, saved
end

-- world:connect([req]) -> conn | nil, status, reason
function World:connect(req)
    req = req or {}
    req.path = req.path or "/ws"
    req.args = req.args or {}
    req.headers = req.headers or {}
    local id = self.next_id
    self.next_id = id + 1
    local peer = req.peer or ("127.0.0.1:" .. (40000 + id))
    req.peer = peer
    self.conns[id] = { id = id, peer = peer, outbox = {}, rooms = {}, room_order = {}, kv = {} }
    local conn = self.rc.conn(id)
    local ok, status, reason = self.handlers.connect(conn, req)
    if not ok then
        self.conns[id] = nil
        return nil, status, reason
    end
    return conn
end

-- world:send(conn, data[, is_binary]) -> handlers.message (errors propagate)
function World:send(conn, data, is_binary)
    return self.handlers.message(conn, data, is_binary and true or false)
end

function World:send_json(conn, tbl)
    return self:send(conn, cjson.encode(tbl), false)
end

-- world:raw(conn) -> { {data=, binary=}, ... } sent since the last take/raw; clears
function World:raw(conn)
    local st = self.conns[conn.id]
    local out = st and st.outbox or {}
    if st then st.outbox = {} end
    return out
end

-- world:take(conn) -> decoded JSON frames sent since the last take/raw; clears
-- (binary frames are returned as { binary = <bytes> })
function World:take(conn)
    local out = {}
    for i, f in ipairs(self:raw(conn)) do
        out[i] = f.binary and { binary = f.data } or cjson.decode(f.data)
    end
    return out
end

-- world:state(conn) -> the C-side record (closing, close_code, kv, user, ...)
function World:state(conn)
    return self.conns[conn.id]
end

-- world:disconnect(conn[, code, reason]): handlers.disconnect while the
-- connection is still registered, then the C-side cleanup (rooms, user index).
function World:disconnect(conn, code, reason)
    local st = self.conns[conn.id]
    if not st then return end
    st.closing = true
    local ok, err = pcall(self.handlers.disconnect, conn, code or 1000, reason or "")
    for name in pairs(st.rooms) do
        remove_value(self.rooms[name].members, conn.id)
    end
    self.conns[conn.id] = nil
    if not ok then error(err, 0) end
end

-- world:tick([advance_ms]) -> handlers.tick(now) after moving the clock
function World:tick(advance_ms)
    self.clock = self.clock + (advance_ms or 0)
    return self.handlers.tick(self.clock)
end

function World:advance(ms)
    self.clock = self.clock + ms
end

return M
