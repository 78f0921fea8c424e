-- scripts/echo.lua: the smallest script. Every message goes back to its
-- sender as it came: text as text, binary as binary.

return {
    decode_json = false, -- never looks at msg: skip the JSON decode
    on_message = function(conn, data, is_binary)
        if is_binary then
            conn:send_binary(data)
        else
            conn:send(data)
        end
    end,
}
