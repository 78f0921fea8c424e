-- plugins/jwt_auth.lua: JWT authentication (RFC 7519) with HMAC, RSA, ECDSA
-- and EdDSA keys, key rotation and strict claim checks.
--
-- A token is taken, in this order, from:
--   1. the `token` query parameter of the upgrade request (ws://host/ws?token=...)
--   2. an `Authorization: Bearer <token>` header
--   3. a message {"type":"auth","token":"...","id":...} after the upgrade
-- and verified with rc.jwt.verifier (lua/roomcast/jwt.lua): the signature in
-- C through OpenSSL, with only the algorithms listed in `algorithms`; then
-- the claims (exp, nbf, iat with `leeway`; iss, aud when configured; sub a
-- string of 1..128 bytes; iat no older than `max_age` when set).
--
-- A valid token sets conn.user = claims.sub and stores the claims JSON in
-- conn:set("claims", ...) (C-owned, so it survives reloads). The auth message
-- is answered with {"type":"authenticated","user_id":sub} (+ "id").
-- A bad token in the upgrade request refuses it with 401 and the reason
-- ("invalid token (expired)"); a bad token in an auth message gets error
-- not_authorized and the connection stays open. Each refusal is counted in
-- /metrics (roomcast_jwt_refusals_by_reason_total) and logged at debug
-- level with the connection id and the reason, never the token.
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
-- Config (at least one key source):
--   secret        HMAC key for HS256/HS384/HS512
--   public_key    path of a PEM file: a public key or a certificate
--                 (RSA >= 2048 bits, EC P-256/P-384, Ed25519)
--   jwks          path of a local JWKS file (RFC 7517); keys chosen by the
--                 token's "kid" (an unknown kid is refused: unknown_kid)
--   algorithms    the accepted algorithms, e.g. {"RS256", "ES256"}: HS256,
--                 HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384,
--                 EdDSA. Required with public_key or jwks; {"HS256"} when
--                 only a secret is given. A key only ever checks the
--                 algorithms of its own type (no algorithm confusion).
--   issuer        string or array: the accepted "iss" values
--   audience      string or array: "aud" must name one of them
--   max_age       seconds: refuse tokens whose iat is older
--   leeway        seconds of clock skew for exp, nbf, iat (0)
--   required      true; auth_timeout: seconds, 10 (0 disables)
--
-- Key rotation: the key files are read when the plugin loads, that is at
-- start and at every reload (SIGHUP). Add the new key to the JWKS, SIGHUP,
-- start signing with it, later remove the old key and SIGHUP again. A file
-- that fails to load fails the reload, and the old keys stay in use.
-- `roomcast -t` loads the plugins too, so it checks the key files.

local rc = require("roomcast")
local util = require("roomcast.util")
local E = require("roomcast.errors")
local cjson = require("cjson")

local config = ... or {}

local REQUIRED = config.required ~= false
local LEEWAY = tonumber(config.leeway) or 0
local AUTH_TIMEOUT_MS = (tonumber(config.auth_timeout) or 10) * 1000

-- the verifier's options are the config minus the plugin's own
local vopts = {}
for k, v in pairs(config) do
    if k ~= "required" and k ~= "auth_timeout" then
        vopts[k] = v
    end
end
local verifier, verr = rc.jwt.verifier(vopts)
if not verifier then
    error("jwt_auth: " .. verr, 1)
end

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
    -- claims, header, payload JSON | nil, reason
    local claims, header_or_reason, json = verifier:verify(token)
    if not claims then
        local reason = header_or_reason
        rc.log.debug("jwt_auth: conn %s: token refused: %s", tostring(conn.id), reason)
        return nil, "invalid token (" .. reason .. ")"
    end
    local sub = claims.sub
    local prev = conn:get("claims") and conn.user
    if prev and prev ~= sub then
        return nil, "already authenticated as '" .. prev .. "'"
    end
    conn.user = sub
    conn:set("claims", json) -- the verified payload as it came (no re-encoding)
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
