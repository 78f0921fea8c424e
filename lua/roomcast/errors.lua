-- roomcast.errors: the stable error codes sent to clients.
--
-- A client receives {"type":"error","code":<code>,"message":<human text>} and
-- may branch on `code`; `message` is for people and may change. Codes are
-- stable snake_case strings (STYLE.md §3.4): add new ones, never rename or
-- reuse one. Each code is its own key, so `errors.not_member` reads well and a
-- typo is a nil that util.send_error refuses.
--
-- Pure Lua, no dependency on the runtime: safe to require from anywhere.

local M = {}

-- code -> default human message (used when a caller gives none)
local defaults = {
    bad_json = "the message is not valid JSON",
    bad_request = "the message must be a JSON object with a string \"type\"",
    unknown_type = "unknown message type",
    missing_field = "a required field is missing",
    invalid_field = "a field has the wrong type or value",
    not_member = "you are not a member of this room",
    already_member = "you are already a member of this room",
    not_authorized = "authentication required",
    forbidden_room = "you may not join this room",
    room_full = "the room is full",
    too_big = "the message is too big",
    rate_limited = "too many messages",
    handler_error = "the server failed to handle this message",
    not_found = "not found",
    unavailable = "the service cannot answer now (history store or bus down); retry later",
    internal = "internal server error",
}

for code in pairs(defaults) do
    M[code] = code
end

-- errors.message(code) -> the default human message for code, or nil if the
-- code is not one of ours.
function M.message(code)
    return defaults[code]
end

-- errors.is_code(code) -> true when code is a stable code of this table.
function M.is_code(code)
    return defaults[code] ~= nil
end

return M
