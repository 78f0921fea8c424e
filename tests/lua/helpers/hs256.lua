-- Pure-LuaJIT SHA-256, HMAC-SHA256 (RFC 2104) and HS256 JWTs (RFC 7519/7515)
-- for the specs only: the fake runtime verifies tokens with it, and specs sign
-- tokens with it. The server does this in C with OpenSSL. Checked against
-- FIPS 180-2 / RFC 4231 vectors and a token signed by OpenSSL (hs256_spec).

local bit = require("bit")
local cjson = require("cjson")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit = bit.rshift, bit.lshift, bit.ror, bit.tobit
local byte, char, rep = string.byte, string.char, string.rep

local M = {}

-- FIPS 180-4 §4.2.2: first 32 bits of the fractional parts of the cube roots
-- of the first 64 primes.
local K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function be32(n)
    return char(band(rshift(n, 24), 255), band(rshift(n, 16), 255), band(rshift(n, 8), 255),
        band(n, 255))
end

-- sha256(s) -> 32 raw bytes
function M.sha256(s)
    local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
        0x1f83d9ab, 0x5be0cd19 }
    local len = #s
    -- padding: 0x80, zeros, 64-bit big-endian bit length (FIPS 180-4 §5.1.1)
    local pad = 64 - ((len + 9) % 64)
    if pad == 64 then pad = 0 end
    local bits = len * 8
    s = s .. "\128" .. rep("\0", pad) .. be32(math.floor(bits / 2 ^ 32)) .. be32(bits % 2 ^ 32)
    local w = {}
    for chunk = 1, #s, 64 do
        for i = 0, 15 do
            local a, b, c, d = byte(s, chunk + i * 4, chunk + i * 4 + 3)
            w[i] = tobit(bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d))
        end
        for i = 16, 63 do
            local x, y = w[i - 15], w[i - 2]
            local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
            local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
            w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
        end
        local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
        for i = 0, 63 do
            local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
            local ch = bxor(band(e, f), band(bnot(e), g))
            local t1 = tobit(hh + S1 + ch + K[i + 1] + w[i])
            local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
            local maj = bxor(band(a, b), band(a, c), band(b, c))
            local t2 = tobit(S0 + maj)
            hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
        end
        h[1], h[2], h[3], h[4] = tobit(h[1] + a), tobit(h[2] + b), tobit(h[3] + c), tobit(h[4] + d)
        h[5], h[6], h[7], h[8] = tobit(h[5] + e), tobit(h[6] + f), tobit(h[7] + g), tobit(h[8] + hh)
    end
    local out = {}
    for i = 1, 8 do
        out[i] = be32(h[i])
    end
    return table.concat(out)
end

function M.hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", byte(c)) end))
end

-- hmac_sha256(key, msg) -> 32 raw bytes (RFC 2104, B = 64)
function M.hmac_sha256(key, msg)
    if #key > 64 then
        key = M.sha256(key)
    end
    key = key .. rep("\0", 64 - #key)
    local ipad, opad = {}, {}
    for i = 1, 64 do
        local k = byte(key, i)
        ipad[i] = char(bxor(k, 0x36))
        opad[i] = char(bxor(k, 0x5c))
    end
    return M.sha256(table.concat(opad) .. M.sha256(table.concat(ipad) .. msg))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local B64_INV = {}
for i = 1, 64 do
    B64_INV[byte(B64, i)] = i - 1
end

-- base64url without padding (RFC 7515 §2 / RFC 4648 §5)
function M.b64url_encode(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = byte(s, i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local q = {
            B64:sub(rshift(n, 18) + 1, rshift(n, 18) + 1),
            B64:sub(band(rshift(n, 12), 63) + 1, band(rshift(n, 12), 63) + 1),
            b and B64:sub(band(rshift(n, 6), 63) + 1, band(rshift(n, 6), 63) + 1) or "",
            c and B64:sub(band(n, 63) + 1, band(n, 63) + 1) or "",
        }
        out[#out + 1] = table.concat(q)
    end
    return table.concat(out)
end

-- -> bytes, or nil when s is not canonical unpadded base64url
function M.b64url_decode(s)
    if #s % 4 == 1 then
        return nil
    end
    local out, acc, nbits = {}, 0, 0
    for i = 1, #s do
        local v = B64_INV[byte(s, i)]
        if not v then
            return nil
        end
        acc = bor(lshift(band(acc, 0xffff), 6), v)
        nbits = nbits + 6
        if nbits >= 8 then
            nbits = nbits - 8
            out[#out + 1] = char(band(rshift(acc, nbits), 255))
        end
    end
    -- RFC 4648 §3.5: the unused bits of the last character must be zero;
    -- otherwise several strings decode to one signature
    if band(acc, lshift(1, nbits) - 1) ~= 0 then
        return nil
    end
    return table.concat(out)
end

-- sign(claims, secret[, header]) -> compact JWS (HS256 unless header says otherwise)
function M.sign(claims, secret, header)
    local h = M.b64url_encode(cjson.encode(header or { alg = "HS256", typ = "JWT" }))
    local p = M.b64url_encode(type(claims) == "string" and claims or cjson.encode(claims))
    local input = h .. "." .. p
    return input .. "." .. M.b64url_encode(M.hmac_sha256(secret, input))
end

local function consttime_eq(a, b)
    if #a ~= #b then
        return false
    end
    local d = 0
    for i = 1, #a do
        d = bor(d, bxor(byte(a, i), byte(b, i)))
    end
    return d == 0
end

-- verify(token, secret, now_s[, opts]) -> claims | nil, err
-- The same contract as rc.jwt.verify in lua/API.md.
function M.verify(token, secret, now_s, opts)
    if type(token) ~= "string" or type(secret) ~= "string" then
        error("jwt.verify: token and secret must be strings", 2)
    end
    local h64, p64, s64 = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
    if not h64 then
        return nil, "malformed"
    end
    local hj, pj, sig = M.b64url_decode(h64), M.b64url_decode(p64), M.b64url_decode(s64)
    if not (hj and pj and sig) then
        return nil, "malformed"
    end
    local okh, header = pcall(cjson.decode, hj)
    local okp, claims = pcall(cjson.decode, pj)
    if not (okh and okp and type(header) == "table" and type(claims) == "table") then
        return nil, "malformed"
    end
    -- RFC 8725 §3.1: never let the token pick the algorithm
    if header.alg ~= "HS256" then
        return nil, "bad_alg"
    end
    if not consttime_eq(sig, M.hmac_sha256(secret, h64 .. "." .. p64)) then
        return nil, "bad_signature"
    end
    local leeway = opts and opts.leeway or 0
    if type(claims.exp) == "number" and now_s >= claims.exp + leeway then
        return nil, "expired"
    end
    if type(claims.nbf) == "number" and now_s + leeway < claims.nbf then
        return nil, "not_yet_valid"
    end
    return claims
end

return M
