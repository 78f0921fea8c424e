-- roomcast.jwt: JWT verification (RFC 7519) with an explicit algorithm
-- allow-list, keys from a secret, a PEM file or a JWKS file (RFC 7517), and
-- strict claim checks. The signature and the key choice are C
-- (core/proto/jwt.c over OpenSSL); the JSON -- the header, the JWKS file and
-- the claims -- is judged here.
--
--   local jwt = require("roomcast.jwt").make(backend)   -- init.lua does this: rc.jwt
--   local v, err = jwt.verifier(opts)                    -- see lua/API.md
--   local claims, header, json = v:verify(token)         -- or nil, reason
--
-- `backend` is the C side (init.lua wraps the rc_ffi_jwt_* calls) or, in
-- the busted specs, tests/lua/helpers/fake_roomcast.lua's stand-in:
--   reasons       array of reason names, index = enum jwt_reason
--   algs          name -> JWT_ALG_* id (0-based)
--   new_keyset(mask) -> ks
--   add_secret(ks, secret) / add_pem(ks, pem) -> 0 | nil, err
--   add_jwk(ks, jwk) -> 0 | 1, why (skipped) | nil, err
--   header(token) -> json | nil, reason
--   verify(ks, alg_id, kid|nil, token) -> payload json | nil, reason
--   refused(reason)        count it (/metrics)
--   now()                  seconds since the epoch
--   read_file(path)        -> text | nil, err
--   warn(msg)              log a warning

local cjson = require("cjson")
local bit = require("bit")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local setmetatable, pcall = setmetatable, pcall
local band, bor, lshift = bit.band, bit.bor, bit.lshift
local fmt = string.format

local M = {}

local MAX_FILE = 1024 * 1024 -- a key file larger than this is a mistake
local MAX_SUB = 128 -- bytes of "sub"

local OPTIONS = {
    algorithms = true, secret = true, public_key = true, jwks = true, leeway = true,
    issuer = true, audience = true, max_age = true,
}

local function decode_object(s)
    local ok, v = pcall(cjson.decode, s)
    if ok and type(v) == "table" then
        return v
    end
    return nil
end

-- a string or a non-empty array of strings -> set, or nil, err
local function string_set(v, name)
    if type(v) == "string" and v ~= "" then
        return { [v] = true }
    end
    if type(v) == "table" and #v > 0 then
        local set = {}
        for _, s in ipairs(v) do
            if type(s) ~= "string" or s == "" then
                return nil, name .. " must be a string or an array of strings"
            end
            set[s] = true
        end
        return set
    end
    return nil, name .. " must be a string or an array of strings"
end

-- The JWK members jwt_keyset_add_jwk reads (RFC 7517 §4, RFC 7518 §6).
local JWK_FIELDS = { "kty", "crv", "kid", "alg", "use", "n", "e", "x", "y" }
-- private members (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2)
local JWK_PRIVATE = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" }

local function load_jwks(be, ks, path)
    local text, err = be.read_file(path)
    if not text then
        return nil, err
    end
    local set = decode_object(text)
    -- RFC 7517 §5: {"keys": [JWK, ...]}
    if not set or type(set.keys) ~= "table" then
        return nil, fmt("jwks %s: not a JSON Web Key Set ({\"keys\": [...]})", path)
    end
    local added = 0
    for i, k in ipairs(set.keys) do
        if type(k) ~= "table" then
            return nil, fmt("jwks %s: key %d is not an object", path, i)
        end
        local jwk = { has_private = false }
        for _, f in ipairs(JWK_FIELDS) do
            local v = k[f]
            if v ~= nil then
                if type(v) ~= "string" then
                    return nil, fmt("jwks %s: key %d: \"%s\" must be a string", path, i, f)
                end
                jwk[f] = v
            end
        end
        for _, f in ipairs(JWK_PRIVATE) do
            if k[f] ~= nil then
                jwk.has_private = true
            end
        end
        local rc, why = be.add_jwk(ks, jwk)
        local label = k.kid ~= nil and fmt("key %d (kid %q)", i, tostring(k.kid)) or "key " .. i
        if rc == nil then
            return nil, fmt("jwks %s: %s: %s", path, label, why)
        elseif rc == 1 then
            be.warn(fmt("jwt: jwks %s: %s: %s", path, label, why))
        else
            added = added + 1
        end
    end
    if added == 0 then
        return nil, fmt("jwks %s: no usable signature key", path)
    end
    return added
end

local function check_claims(v, c, now)
    local lw = v.leeway
    -- RFC 7519 §4.1.4: reject on or after exp; §4.1.5: before nbf
    local exp, nbf, iat = c.exp, c.nbf, c.iat
    if exp ~= nil then
        if type(exp) ~= "number" then return "bad_claim" end
        if now >= exp + lw then return "expired" end
    end
    if nbf ~= nil then
        if type(nbf) ~= "number" then return "bad_claim" end
        if now + lw < nbf then return "not_yet_valid" end
    end
    if iat ~= nil then
        if type(iat) ~= "number" then return "bad_claim" end
        if iat > now + lw then return "issued_in_future" end
    end
    if v.max_age then
        if iat == nil then return "missing_iat" end
        if now > iat + v.max_age + lw then return "too_old" end
    end
    -- RFC 7519 §4.1.1: iss is a case-sensitive string
    if v.issuer and (type(c.iss) ~= "string" or not v.issuer[c.iss]) then
        return "bad_issuer"
    end
    -- RFC 7519 §4.1.3: aud is a string or an array of strings
    if v.audience then
        local aud, ok = c.aud, false
        if type(aud) == "string" then
            ok = v.audience[aud] == true
        elseif type(aud) == "table" then
            for _, a in ipairs(aud) do
                if type(a) == "string" and v.audience[a] then
                    ok = true
                    break
                end
            end
        end
        if not ok then return "bad_audience" end
    end
    -- RFC 7519 §4.1.2: sub is a StringOrURI; an identity needs a real one
    local sub = c.sub
    if type(sub) ~= "string" or #sub == 0 or #sub > MAX_SUB then
        return "bad_subject"
    end
    return nil
end

function M.make(be)
    local jwt = {}
    jwt.REASONS = be.reasons
    jwt.ALGORITHMS = {}
    for name in pairs(be.algs) do
        jwt.ALGORITHMS[#jwt.ALGORITHMS + 1] = name
    end
    table.sort(jwt.ALGORITHMS)

    local function refuse(reason)
        be.refused(reason)
        return nil, reason
    end

    local V = {}
    V.__index = V

    -- v:verify(token) -> claims, header, payload JSON text | nil, reason
    function V:verify(token)
        if type(token) ~= "string" then
            error("jwt verify: bad argument #1 (string expected, got " .. type(token) .. ")", 2)
        end
        local hjson, why = be.header(token)
        if not hjson then
            return refuse(why)
        end
        local header = decode_object(hjson)
        if not header then
            return refuse("malformed")
        end
        -- RFC 8725 §3.1: the allow-list decides; "none" is never in it
        local alg = header.alg
        local id = type(alg) == "string" and be.algs[alg] or nil
        if id == nil or band(self.mask, lshift(1, id)) == 0 then
            return refuse("bad_alg")
        end
        -- RFC 7515 §4.1.11: we understand no extension, so any "crit" fails
        if header.crit ~= nil then
            return refuse("unsupported_crit")
        end
        local kid = header.kid
        if kid ~= nil and type(kid) ~= "string" then
            return refuse("malformed")
        end
        local pjson, r = be.verify(self.ks, id, kid, token)
        if not pjson then
            return refuse(r)
        end
        local claims = decode_object(pjson)
        if not claims then
            return refuse("malformed")
        end
        local bad = check_claims(self, claims, be.now())
        if bad then
            return refuse(bad)
        end
        return claims, header, pjson
    end

    -- jwt.verifier(opts) -> verifier | nil, err (lua/API.md)
    function jwt.verifier(opts)
        if type(opts) ~= "table" then
            error("jwt.verifier: bad argument #1 (table expected, got " .. type(opts) .. ")", 2)
        end
        for k in pairs(opts) do
            if not OPTIONS[k] then
                return nil, fmt("unknown option '%s'", tostring(k))
            end
        end
        local secret, pem, jwks = opts.secret, opts.public_key, opts.jwks
        for name, val in pairs({ secret = secret, public_key = pem, jwks = jwks }) do
            if val ~= nil and (type(val) ~= "string" or val == "") then
                return nil, name .. " must be a non-empty string"
            end
        end
        if not secret and not pem and not jwks then
            return nil, "a key is required: secret, public_key (a PEM file) or jwks (a JWKS file)"
        end
        local algs = opts.algorithms
        if algs == nil then
            -- the one default that cannot confuse: a lone secret is HS256
            if pem or jwks then
                return nil, "algorithms is required with public_key or jwks "
                    .. '(e.g. {"RS256"}): the accepted algorithms must be explicit'
            end
            algs = { "HS256" }
        end
        if type(algs) ~= "table" or #algs == 0 then
            return nil, "algorithms must be a non-empty array of names"
        end
        local mask = 0
        for _, a in ipairs(algs) do
            local id = type(a) == "string" and be.algs[a] or nil
            if id == nil then
                return nil, fmt("algorithms: unknown algorithm %s (known: %s)", tostring(a),
                    table.concat(jwt.ALGORITHMS, ", "))
            end
            mask = bor(mask, lshift(1, id))
        end
        local v = setmetatable({ mask = mask, leeway = 0 }, V)
        if opts.leeway ~= nil then
            local lw = tonumber(opts.leeway)
            if not lw or lw < 0 then
                return nil, "leeway must be a number of seconds >= 0"
            end
            v.leeway = lw
        end
        if opts.max_age ~= nil then
            local ma = tonumber(opts.max_age)
            if not ma or ma <= 0 then
                return nil, "max_age must be a number of seconds > 0"
            end
            v.max_age = ma
        end
        local err
        if opts.issuer ~= nil then
            v.issuer, err = string_set(opts.issuer, "issuer")
            if not v.issuer then return nil, err end
        end
        if opts.audience ~= nil then
            v.audience, err = string_set(opts.audience, "audience")
            if not v.audience then return nil, err end
        end
        local ks = be.new_keyset(mask)
        v.ks = ks
        local ok
        if secret then
            ok, err = be.add_secret(ks, secret)
            if not ok then return nil, "secret: " .. err end
            -- RFC 7518 §3.2: a key at least as long as the hash output
            if #secret < 32 then
                be.warn(fmt("jwt: the secret is %d bytes; RFC 7518 section 3.2 asks for at "
                    .. "least 32 (HS256), 48 (HS384), 64 (HS512)", #secret))
            end
        end
        if pem then
            local text
            text, err = be.read_file(pem)
            if not text then return nil, err end
            ok, err = be.add_pem(ks, text)
            if not ok then return nil, fmt("public_key %s: %s", pem, err) end
        end
        if jwks then
            ok, err = load_jwks(be, ks, jwks)
            if not ok then return nil, err end
        end
        return v
    end

    -- jwt.verify(token, secret[, opts]) -> claims, header | nil, reason:
    -- the HS256 shorthand (opts: the claim options of jwt.verifier).
    local cache, ncache = {}, 0
    function jwt.verify(token, secret, opts)
        if type(token) ~= "string" then
            error("jwt.verify: bad argument #1 (string expected, got " .. type(token) .. ")", 2)
        end
        if type(secret) ~= "string" then
            error("jwt.verify: bad argument #2 (string expected, got " .. type(secret) .. ")", 2)
        end
        local o = { secret = secret, algorithms = { "HS256" } }
        if opts then
            o.leeway, o.issuer, o.audience, o.max_age = opts.leeway, opts.issuer, opts.audience,
                opts.max_age
        end
        local key = secret .. "\0" .. cjson.encode({ o.leeway, o.issuer, o.audience, o.max_age })
        local v = cache[key]
        if not v then
            local err
            v, err = jwt.verifier(o)
            if not v then
                error("jwt.verify: " .. err, 2)
            end
            if ncache >= 16 then
                cache, ncache = {}, 0
            end
            cache[key], ncache = v, ncache + 1
        end
        return v:verify(token)
    end

    -- for checks outside a verifier
    jwt.MAX_FILE = MAX_FILE
    return jwt
end

return M
