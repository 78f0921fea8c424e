-- plugins/ratelimit.lua: a token bucket per connection for incoming messages.
--
-- Each message costs one token; the bucket holds at most `burst` tokens and
-- refills at `rate` tokens per second. A message that finds the bucket empty
-- is dropped and answered with error rate_limited; with `close_after` > 0,
-- that many violations in a row close the connection with 1008 (RFC 6455
-- §7.4.1: policy violation). Any accepted message resets the streak.
--
-- The bucket lives in conn data (C-owned), so a reload neither refills nor
-- forgets it: keys rl.tokens, rl.at (ms), rl.strikes.
--
-- Config: rate (messages per second, default 20), burst (default 2 * rate),
--         close_after (default 0: never close).

local rc = require("roomcast")
local E = require("roomcast.errors")

local config = ... or {}

local RATE = tonumber(config.rate) or 20
local BURST = tonumber(config.burst) or RATE * 2
local CLOSE_AFTER = tonumber(config.close_after) or 0
if RATE <= 0 or BURST < 1 then
    error("ratelimit: rate must be > 0 and burst >= 1", 1)
end

local MESSAGE = string.format("too many messages: the limit is %s per second (bursts of %s)",
    tostring(RATE), tostring(BURST))

local function on_message(conn)
    local now = rc.now()
    local tokens = tonumber(conn:get("rl.tokens")) or BURST
    local at = tonumber(conn:get("rl.at")) or now
    if now > at then
        tokens = math.min(BURST, tokens + (now - at) * RATE / 1000)
    end
    if tokens >= 1 then
        conn:set("rl.tokens", tostring(tokens - 1))
        conn:set("rl.at", tostring(now))
        if conn:get("rl.strikes") then
            conn:set("rl.strikes", nil)
        end
        return true
    end
    conn:set("rl.tokens", tostring(tokens))
    conn:set("rl.at", tostring(now))
    local strikes = (tonumber(conn:get("rl.strikes")) or 0) + 1
    conn:set("rl.strikes", tostring(strikes))
    if CLOSE_AFTER > 0 and strikes >= CLOSE_AFTER then
        rc.log.info("ratelimit: closing conn %d (%s) after %d violations", conn.id,
            tostring(conn.peer), strikes)
        conn:close(1008, "rate limit exceeded")
        return false
    end
    return false, E.rate_limited, MESSAGE
end

return {
    name = "ratelimit",
    on_message = on_message,
    decode_json = false, -- it never looks at msg (other hooks may still want it)
}
