-- plugins/jwt_auth.lua: HS256 JWT authentication (RFC 7519).
--
-- A token is taken, in this order, from:
--   1. the `token` query parameter of the upgrade request (ws://host/ws?token=...)
--   2. an `Authorization: Bearer <token>` header
--   3. a message {"type":"auth","token":"...","id":...} after the upgrade
-- and verified with rc.jwt.verify (HMAC in C, exp/nbf with `leeway`).
--
-- A valid token sets conn.user = claims.sub and stores the claims JSON in
-- conn:set("claims", ...) (C-owned, so it survives reloads). The auth message
-- is answered with {"type":"authenticated","user_id":sub} (+ "id").
-- A bad token in the upgrade request refuses it with 401; a bad token in an
-- auth message gets error not_authorized and the connection stays open.
--
-- With `required` (the default), an unauthenticated connection may only send
-- auth messages: everything else gets not_authorized, joins are denied, and a
-- connection still unauthenticated after `auth_timeout` seconds is closed
-- with 1008. Without `required`, anonymous connections may do anything, and a
-- token only adds an identity.
--
-- An optional `rooms` claim, an array of patterns ("lobby", "game:*"),
-- limits which rooms the user may join (forbidden_room otherwise). A join
-- after the token's exp is refused with not_authorized.
--
-- Config: secret (required), required (true), leeway (seconds, 0),
--         auth_timeout (seconds, 10; 0 disables).

local rc = require("roomcast")
local util = require("roomcast.util")
local E = require("roomcast.errors")
local cjson = require("cjson")

local config = ... or {}

if type(config.secret) ~= "string" or config.secret == "" then
    error("jwt_auth: config.secret (the HS256 key) is required", 1)
end
local SECRET = config.secret
local REQUIRED = config.required ~= false
local LEEWAY = tonumber(config.leeway) or 0
local AUTH_TIMEOUT_MS = (tonumber(config.auth_timeout) or 10) * 1000
local VERIFY_OPTS = { leeway = LEEWAY }

-- conn id (string, for JSON) -> deadline in ms; handed over on reload
local pending = {}

local function claims_of(conn)
    local s = conn:get("claims")
    if not s then
        return nil
    end
    local ok, t = pcall(cjson.decode, s)
    return ok and type(t) == "table" and t or nil
end

-- Verify token and attach it to conn. -> sub | nil, reason
local function authenticate(conn, token)
    local claims, err = rc.jwt.verify(token, SECRET, VERIFY_OPTS)
    if not claims then
        return nil, "invalid token (" .. tostring(err) .. ")"
    end
    local sub = claims.sub
    if type(sub) == "number" then
        sub = tostring(sub)
    end
    if type(sub) ~= "string" or sub == "" or #sub > 128 then
        return nil, "token has no usable \"sub\" claim"
    end
    local prev = conn:get("claims") and conn.user
    if prev and prev ~= sub then
        return nil, "already authenticated as '" .. prev .. "'"
    end
    conn.user = sub
    conn:set("claims", cjson.encode(claims))
    pending[tostring(conn.id)] = nil
    return sub
end

local function bearer(headers)
    local h = headers and headers.authorization
    if type(h) ~= "string" then
        return nil
    end
    -- RFC 6750 §2.1: the scheme is case-insensitive
    return h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
end

local function on_connect(conn, req)
    local token = req.args and req.args.token
    if type(token) ~= "string" or token == "" then
        token = bearer(req.headers)
    end
    if token then
        local sub, why = authenticate(conn, token)
        if not sub then
            return false, 401, why
        end
    elseif REQUIRED and AUTH_TIMEOUT_MS > 0 then
        pending[tostring(conn.id)] = rc.now() + AUTH_TIMEOUT_MS
    end
    return true
end

local function on_message(conn, _, _, msg)
    if msg and msg.type == "auth" then
        local id = msg.id
        if not util.valid_id(id) then
            id = nil
        end
        local token = msg.token
        if token == nil then
            return false, E.missing_field, "token is required"
        end
        if type(token) ~= "string" or token == "" then
            return false, E.invalid_field, "token must be a non-empty string"
        end
        local sub, why = authenticate(conn, token)
        if not sub then
            return false, E.not_authorized, why
        end
        util.reply(conn, id, { type = "authenticated", user_id = sub })
        return false -- handled
    end
    if REQUIRED and not conn:get("claims") then
        return false, E.not_authorized,
            'authenticate first: send {"type":"auth","token":"<jwt>"} or connect with ?token='
    end
    return true
end

local function on_join(conn, room)
    local claims = claims_of(conn)
    if not claims then
        if REQUIRED then
            return false, E.not_authorized, "authenticate before joining rooms"
        end
        return true
    end
    if type(claims.exp) == "number" and rc.now() / 1000 >= claims.exp + LEEWAY then
        return false, E.not_authorized, "the token has expired; authenticate again"
    end
    local rooms = claims.rooms
    if rooms == nil then
        return true
    end
    -- a malformed claim grants nothing
    if type(rooms) == "table" then
        for _, pattern in ipairs(rooms) do
            if type(pattern) == "string" and util.glob_match(pattern, room.name) then
                return true
            end
        end
    end
    return false, E.forbidden_room, "the token does not allow joining '" .. room.name .. "'"
end

local function on_tick(now_ms)
    for id, deadline in pairs(pending) do
        if now_ms >= deadline then
            pending[id] = nil
            local conn = rc.conn(tonumber(id))
            if not conn:get("claims") then
                conn:close(1008, "authentication timeout")
            end
        end
    end
end

local function on_disconnect(conn)
    pending[tostring(conn.id)] = nil
end

return {
    name = "jwt_auth",
    on_connect = on_connect,
    on_message = on_message,
    on_join = on_join,
    on_tick = on_tick,
    on_disconnect = on_disconnect,
    save_state = function()
        if next(pending) == nil then
            return nil
        end
        return { pending = pending }
    end,
    on_reload = function(old)
        if type(old) == "table" and type(old.pending) == "table" then
            for id, deadline in pairs(old.pending) do
                if type(deadline) == "number" then
                    pending[tostring(id)] = deadline
                end
            end
        end
    end,
}
