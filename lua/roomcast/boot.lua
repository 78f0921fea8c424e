-- roomcast.boot: loads plugins, per-room scripts and the main script into
-- sandboxed environments and builds the `handlers` table C calls.
--
--   local handlers = require("roomcast.boot").load(opts)   -- see lua/API.md
--
-- The chain, for every event:
--
--     plugin 1 -> plugin 2 -> ... -> route script (if one matches) -> main script
--
-- A hook that returns `false` stops the chain. For on_message (and on_join),
-- `false, code, message` also tells the client why; a bare `false` means
-- "handled, stay quiet". Anything else (true, nil) lets the next hook run.
--
-- A route ({pattern = "game:*", script = "scripts/game.lua"}) is a script
-- scoped to rooms whose name matches the pattern (util.glob). Its on_join and
-- on_leave run for matching rooms, its on_message for messages whose decoded
-- `room_id` matches; the first matching route wins. Its on_tick,
-- on_disconnect, on_reload and save_state run like any script's.
--
-- How conn:join / conn:leave reach the chain: load() stores the handlers in
-- the runtime module as `require("roomcast")._chain` (last step, only after
-- everything loaded). init.lua's conn:join calls _chain.join_chain(conn, room)
-- before asking C to join, and conn:leave calls _chain.leave_chain(conn, room)
-- after C left. See "Chain hook-up" in lua/API.md.

local cjson = require("cjson")
local util = require("roomcast.util")
local errors = require("roomcast.errors")

local M = {}

local type, pcall, error, ipairs, tostring = type, pcall, error, ipairs, tostring
local decode = cjson.decode

local HOOKS = {
    "on_connect", "on_message", "on_join", "on_leave", "on_disconnect", "on_tick",
    "on_reload", "save_state", "on_api_publish",
}

local function load_error(fmt, ...)
    error(string.format(fmt, ...), 0)
end

-- Load one script or plugin. The chunk runs with `...` = config, name (name
-- only for plugins). Returns its hook table; raises "path:line: msg" (Lua's
-- own position when there is one, "path: msg" otherwise).
local function load_unit(kind, path, label, config)
    if type(path) ~= "string" or path == "" then
        load_error("roomcast.boot: %s %s has no path", kind, tostring(label))
    end
    local sandbox = require("roomcast.sandbox")
    local env = sandbox.new_env({ name = label })
    local chunk, err = sandbox.loadfile(path, env)
    if not chunk then
        error(err, 0)
    end
    local ok, hooks = pcall(chunk, config, kind == "plugin" and label or nil)
    if not ok then
        error(tostring(hooks), 0)
    end
    if type(hooks) ~= "table" then
        load_error("%s: %s must return a table of hooks (got %s)", path, kind, type(hooks))
    end
    for _, h in ipairs(HOOKS) do
        if hooks[h] ~= nil and type(hooks[h]) ~= "function" then
            load_error("%s: hook %s must be a function (got %s)", path, h, type(hooks[h]))
        end
    end
    return hooks
end

-- Collect hook functions of one name from a list of units, in order.
local function collect(units, hook)
    local out = {}
    for _, u in ipairs(units) do
        if u.hooks[hook] then
            out[#out + 1] = u.hooks[hook]
        end
    end
    return out
end

local function id_of(msg)
    if msg then
        local id = msg.id
        if id ~= nil and util.valid_id(id) then
            return id
        end
    end
    return nil
end

-- Run every fn in fns with the same arguments, even when one raises, then
-- re-raise the first error (so one broken plugin cannot starve the others of
-- ticks or cleanup).
local function run_all(fns, a, b, c)
    local first
    for i = 1, #fns do
        local ok, err = pcall(fns[i], a, b, c)
        if not ok and first == nil then
            first = err
        end
    end
    if first ~= nil then
        error(first, 0)
    end
end
util.no_trace(run_all)

-- boot.load_plugins(list) -> units: runs each plugin's chunk (its setup:
-- config checks, key files...) in config order. Also what `roomcast -t`
-- runs (rc._check_plugins), so a plugin's setup errors show up there.
function M.load_plugins(list)
    local plugins, seen = {}, {}
    for i, p in ipairs(list or {}) do
        if type(p) ~= "table" or type(p.name) ~= "string" or p.name == "" then
            load_error("roomcast.boot: plugin #%d needs a name", i)
        end
        if seen[p.name] then
            load_error("roomcast.boot: plugin %s is listed twice", p.name)
        end
        seen[p.name] = true
        local hooks = load_unit("plugin", p.path, p.name, p.config or {})
        plugins[#plugins + 1] = { kind = "plugin", key = p.name, hooks = hooks }
    end
    return plugins
end

-- boot.load(opts) -> handlers. See lua/API.md "Loading".
function M.load(opts)
    if type(opts) ~= "table" then
        error("roomcast.boot.load: opts must be a table", 2)
    end
    local rc = require("roomcast")
    if opts.config ~= nil then
        rc.config = opts.config
    end
    local config = opts.config or rc.config or {}

    local old
    if opts.old_state ~= nil then
        local ok, v = pcall(decode, opts.old_state)
        if ok and type(v) == "table" then
            old = v
        else
            -- a bad hand-over must not block the reload; start fresh
            if rc.log and rc.log.warn then
                rc.log.warn("boot: ignoring undecodable old_state")
            end
            old = {}
        end
    end

    -- every loaded unit: { kind, key, hooks, match (routes only) }
    local plugins, routes = M.load_plugins(opts.plugins), {}
    for i, r in ipairs(opts.routes or {}) do
        if type(r) ~= "table" or type(r.pattern) ~= "string" or r.pattern == "" then
            load_error("roomcast.boot: route #%d needs a pattern", i)
        end
        local hooks = load_unit("script", r.script, r.script, r.config or config)
        routes[#routes + 1] = { kind = "route", key = r.pattern, hooks = hooks,
            match = util.glob(r.pattern) }
    end
    if type(opts.script) ~= "string" then
        load_error("roomcast.boot: opts.script (path of the main script) is required")
    end
    local script = { kind = "script", key = "script",
        hooks = load_unit("script", opts.script, opts.script, config) }

    local all = {}
    for _, u in ipairs(plugins) do all[#all + 1] = u end
    for _, u in ipairs(routes) do all[#all + 1] = u end
    all[#all + 1] = script

    -- Hand the previous generation's state over before anything runs; an
    -- error here fails the load, so C keeps the old state.
    if old ~= nil then
        for _, u in ipairs(all) do
            local f = u.hooks.on_reload
            if f then
                local part
                if u.kind == "plugin" then
                    part = type(old.plugins) == "table" and old.plugins[u.key] or nil
                elseif u.kind == "route" then
                    part = type(old.routes) == "table" and old.routes[u.key] or nil
                else
                    part = old.script
                end
                local ok, err = pcall(f, part)
                if not ok then
                    error(tostring(err), 0)
                end
            end
        end
    end

    local plugin_connect = collect(plugins, "on_connect")
    local script_connect = script.hooks.on_connect
    local plugin_message = collect(plugins, "on_message")
    local script_message = script.hooks.on_message
    local plugin_join, plugin_leave = collect(plugins, "on_join"), collect(plugins, "on_leave")
    local disconnect_fns = collect(all, "on_disconnect")
    local tick_fns = collect(all, "on_tick")

    -- Decode JSON only when some hook on the message path wants `msg`
    -- (a hook table with decode_json = false says it does not).
    local want_json = false
    for _, u in ipairs(all) do
        if u.hooks.on_message and u.hooks.decode_json ~= false then
            want_json = true
        end
    end

    local function route_for(name)
        if type(name) ~= "string" then
            return nil
        end
        for i = 1, #routes do
            if routes[i].match(name) then
                return routes[i].hooks
            end
        end
        return nil
    end

    local function room_handle(room)
        if type(room) == "string" then
            return rc.room(room)
        end
        return room
    end

    local handlers = {}

    function handlers.connect(conn, req)
        req = req or {}
        for i = 1, #plugin_connect do
            local ok, status, reason = plugin_connect[i](conn, req)
            if ok == false then
                return false, status or 403, reason or "Forbidden"
            end
        end
        if script_connect then
            local ok, status, reason = script_connect(conn, req)
            if ok == false then
                return false, status or 403, reason or "Forbidden"
            end
        end
        return true
    end

    -- Before the chain answers for a hook: the held joins it left waiting
    -- end first (C decides from what was sent since each join, and the
    -- chain's own error reply is not part of a replay; lua/API.md "Held
    -- joins"). The runtime module is looked up late: boot loads inside it.
    local function end_holds(raised)
        local rc = package.loaded["roomcast"]
        if rc and rc._end_holds then
            rc._end_holds(raised)
        end
    end

    -- A message hook that returned false stops the chain; the error code it
    -- gave (if any) goes to the client. Returns true when stopped.
    local function stopped(conn, msg, ok, code, text)
        if ok ~= false then
            return false
        end
        if code ~= nil then
            end_holds()
            util.send_error(conn, code, text, id_of(msg))
        end
        return true
    end

    -- One message through the chain; returns nothing. Raised errors are
    -- handled by handlers.message.
    local function run_message(conn, data, is_binary, msg)
        for i = 1, #plugin_message do
            if stopped(conn, msg, plugin_message[i](conn, data, is_binary, msg)) then
                return
            end
        end
        if msg and #routes > 0 then
            local r = route_for(msg.room_id)
            if r and r.on_message and stopped(conn, msg, r.on_message(conn, data, is_binary, msg)) then
                return
            end
        end
        if script_message then
            -- the common case (the hook returned nothing) with no call to
            -- stopped: this runs interpreted, once per message
            local ok, code, text = script_message(conn, data, is_binary, msg)
            if ok == false then
                stopped(conn, msg, ok, code, text)
            end
        end
    end

    function handlers.message(conn, data, is_binary)
        local msg
        if want_json and not is_binary and data:find("^%s*{") then
            local ok, v = pcall(decode, data)
            if ok and type(v) == "table" then
                msg = v
            end
        end
        local ok, err = pcall(run_message, conn, data, is_binary, msg)
        if not ok then
            -- The client learns that its message failed, not why (the
            -- reason may name files); C logs err with script:line.
            pcall(end_holds, true)
            pcall(util.send_error, conn, errors.handler_error, nil, id_of(msg))
            error(err, 0)
        end
    end
    -- they always end in hook code (util.no_trace)
    util.no_trace(handlers.connect)
    util.no_trace(run_message)
    util.no_trace(handlers.message)

    -- Called by conn:join before C joins. -> true | false, code, message
    function handlers.join_chain(conn, room)
        room = room_handle(room)
        local function denied(code, text)
            return false, code or errors.forbidden_room,
                text or ("joining '" .. tostring(room.name) .. "' is not allowed")
        end
        for i = 1, #plugin_join do
            local ok, code, text = plugin_join[i](conn, room)
            if ok == false then
                return denied(code, text)
            end
        end
        local r = route_for(room.name)
        if r and r.on_join then
            local ok, code, text = r.on_join(conn, room)
            if ok == false then
                return denied(code, text)
            end
        end
        if script.hooks.on_join then
            local ok, code, text = script.hooks.on_join(conn, room)
            if ok == false then
                return denied(code, text)
            end
        end
        return true
    end

    -- Called by conn:leave after C removed the membership. Return values of
    -- the hooks are ignored: a leave cannot be refused.
    function handlers.leave_chain(conn, room)
        room = room_handle(room)
        for i = 1, #plugin_leave do
            plugin_leave[i](conn, room)
        end
        local r = route_for(room.name)
        if r and r.on_leave then
            r.on_leave(conn, room)
        end
        if script.hooks.on_leave then
            script.hooks.on_leave(conn, room)
        end
    end

    -- C calls this while conn is still registered and still in its rooms.
    -- Leaving each room through conn:leave gives every on_leave the same view
    -- as an explicit leave (membership already gone), then on_disconnect runs
    -- everywhere. All hooks run even if one raises; the first error is
    -- re-raised for C to log.
    function handlers.disconnect(conn, code, reason)
        local first
        local rooms = conn:rooms()
        if type(rooms) == "table" then
            for _, name in ipairs(rooms) do
                local ok, err = pcall(conn.leave, conn, name)
                if not ok and first == nil then
                    first = err
                end
            end
        end
        local ok, err = pcall(run_all, disconnect_fns, conn, code, reason)
        if not ok and first == nil then
            first = err
        end
        if first ~= nil then
            error(first, 0)
        end
    end
    util.no_trace(handlers.disconnect)

    -- POST /api/publish (core/app/api.c), on the room's owner worker: the
    -- route's or the script's on_api_publish(room, body, sender) returns the
    -- text (or a table, encoded) every member receives, and optionally
    -- { stamp = false } to keep C from splicing "seq"/"ts" into it; or nil,
    -- code, message to refuse (HTTP 400 with that code).
    -- -> payload, stamp (1/0)  or  nil, code, message
    function handlers.api_publish(room, body, sender)
        local r = route_for(room)
        local f = (r and r.on_api_publish) or script.hooks.on_api_publish
        if not f then
            return nil, "no_publish_hook", "the script has no on_api_publish hook"
        end
        local ok, msg = pcall(decode, body)
        if not ok or type(msg) ~= "table" or msg[1] ~= nil then
            return nil, "bad_json", "the body must be a JSON object"
        end
        local payload, opts, text = f(rc.room(room), msg, sender)
        if payload == nil then
            return nil, opts or "rejected", text or "the script refused the message"
        end
        if type(payload) == "table" then
            payload = util.encode(payload)
        elseif type(payload) ~= "string" then
            error("on_api_publish returned a " .. type(payload) .. ", not a string or table", 0)
        end
        local stamp = not (type(opts) == "table" and opts.stamp == false)
        return payload, stamp and 1 or 0
    end

    function handlers.tick(now_ms)
        run_all(tick_fns, now_ms)
    end

    -- -> JSON text {"plugins":{name:state},"routes":{pattern:state},"script":state}
    --    or nil when no unit has state. Raises "<unit>: save_state: ..." when a
    --    state is not JSON-serialisable (C keeps running; the new generation
    --    then starts without state).
    function handlers.save_state()
        local state, any = {}, false
        for _, u in ipairs(all) do
            local f = u.hooks.save_state
            if f then
                local v = f()
                if v ~= nil then
                    any = true
                    if u.kind == "plugin" then
                        state.plugins = state.plugins or {}
                        state.plugins[u.key] = v
                    elseif u.kind == "route" then
                        state.routes = state.routes or {}
                        state.routes[u.key] = v
                    else
                        state.script = v
                    end
                end
            end
        end
        if not any then
            return nil
        end
        local ok, out = pcall(util.encode, state)
        if not ok then
            error("save_state: state is not JSON-serialisable: " .. tostring(out), 0)
        end
        return out
    end

    rc._chain = handlers
    return handlers
end

return M
