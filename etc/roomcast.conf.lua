-- roomcast.conf.lua - every option with its default.
--
-- This file is Lua. It returns a table of options (as here); a file that
-- assigns the options as globals (`port = 8080`) works too, a returned table
-- wins. It runs once in a throwaway Lua state, so it may compute values
-- (os.getenv("ROOMCAST_TOKEN")), but nothing it creates outlives the load.
-- Unknown keys are errors. Check a file with:   roomcast -t -c FILE
-- Command-line flags (-b -p -w -s --admin ..., every option is one: see
-- roomcast -h) override the file. core/app/options.h defines them all.
-- Sizes take 65536, "64K", "8M", "1G"; durations take 10, "500ms", "2s", "1m".
-- (R) marks options SIGHUP re-reads; the others need a restart.
-- Relative script and plugin paths start from this file's directory, then
-- the data directory beside the Lua runtime (/usr/share/roomcast when
-- installed, the checkout in a source tree): "scripts/chat.lua" works in both.
-- Relative tls_* files start from this file's directory only.

return {
    -- listeners --------------------------------------------------------------
    bind = "0.0.0.0",           -- address of the ws:// listener (IPv6: "::")
    port = 8080,                -- ws:// port; 0 = any free port
    listen = nil,               -- the same two as one "ADDR:PORT" string ("0.0.0.0:8080")
    workers = 0,                -- worker threads; 0 = one per online CPU (max 64)
    accept = "reuseport",       -- "reuseport" (a listener per worker) | "handoff" (one acceptor)

    -- TLS (wss://): on when tls_cert is set; same bind address, TLS 1.2+
    tls_port = 8443,            -- wss:// port; 0 = any free port
    tls_cert = nil,             -- PEM certificate, may hold the chain after the leaf
    tls_key = nil,              -- PEM private key
    tls_chain = nil,            -- optional PEM file of intermediate certificates

    -- application ------------------------------------------------------------
    script = "scripts/chat.lua",-- handler script; SIGHUP reloads it (default: nil = echo)
    echo = false,               -- built-in C echo handler instead of a script
    lua_dir = nil,              -- where lua/roomcast lives; nil = searched: next to the
                                -- binary (../share/roomcast/lua), the install prefix,
                                -- the source tree (roomcast -V shows the one found)
    lua_budget = 10000000,      -- VM instructions per handler call
    lua_wait_timeout = 5,       -- seconds a handler waits for the store or a publish's answer
    tick_interval = 1,          -- seconds between on_tick calls; 0 = off
    recover_hold = 4096,        -- live messages held per room and worker for joins with
                                -- `since` while their replay is read; more: recovered=false
    recover_hold_timeout = 30,  -- seconds a held join may wait for conn:release (its handler
                                -- still running); then it ends and its connection closes
                                -- 1011; 0 = never (the handler's end still ends it:
                                -- lua/API.md "Held joins")
    history_size = 100,         -- messages kept per room by the memory store
    history = {                 -- durable history (README "History"); `make run` and
                                -- --history sqlite:PATH use SQLite
        store = "memory",       -- "sqlite": one file, WAL, a writer thread; "memory": lost on exit
        path = "var/roomcast.db", -- the SQLite file (its directory is created; relative: to
                                -- the working directory)
        keep = 1000,            -- messages kept per room
        max_age = "7d",         -- older ones are deleted in the background (default: 604800)
        flush_ms = 10,          -- commit period: at most this much is lost by a crash
    },
    store_errors = "deliver",   -- a failing store (disk full): "deliver" live anyway and
                                -- report degraded | "refuse" publishes with `unavailable`
    bus = "local",              -- how publishes reach the workers: "local" (mailboxes)
    cluster = {                 -- several nodes through Redis (README: Running a cluster)
        redis = nil,            -- "redis://127.0.0.1:6379/0" selects the Redis bus; nil = alone
        password_env = "ROOMCAST_REDIS_PASSWORD", -- env variable with the Redis password
        node_id = nil,          -- nil = HOST:PORT-random
        node_ttl = 10,          -- seconds before a dead node leaves presence
    },
    script_config = {           -- handed to the script as JSON (roomcast.config)
        -- motd = "welcome",
    },
    plugins = {                 -- run before the script, in this order
        -- { name = "jwt", path = "plugins/jwt_auth.lua", config = {
        --     algorithms = { "RS256" }, jwks = "/etc/roomcast/jwks.json",
        --     issuer = "https://auth.example", audience = "chat" } },   -- README: JWT
        -- { name = "ratelimit", config = { rate = 20 } },  -- no path: plugins/NAME.lua
    },
    routes = {                  -- rooms matching a pattern go to another script
        -- { pattern = "game:*", script = "scripts/game.lua" },
    },

    -- protocol limits and timeouts -------------------------------------------
    max_message = "1M",         -- largest message accepted (close 1009 above)
    max_head = "8K",            -- largest HTTP upgrade request head (431 above)
    max_headers = 64,           -- header fields in the upgrade request (431 above)
    handshake_timeout = 10,     -- seconds to finish the upgrade (408 / dropped)
    ping_interval = 30,         -- idle seconds before the server pings
    pong_timeout = 10,          -- seconds to answer the ping (then close 1001)
    close_timeout = 5,          -- seconds for the closing handshake
    drain_time = 2,             -- SIGTERM: close 1001 spread over this many seconds

    -- slow consumers -----------------------------------------------------------
    sndbuf = 0,                 -- SO_SNDBUF of client sockets in bytes; 0 = the kernel's
    sendq_limit = "8M",         -- hard limit of one connection's send queue
    sendq_soft_limit = "1M",    -- soft limit ...
    sendq_soft_seconds = 10,    -- ... exceeded for this long counts as over
    slow_consumer = "drop",     -- over the limit: "drop" | "close" (1008) | "latest"

    -- fan-out coalescing: room messages that follow a fan-out write within
    -- this window wait for its end, so a member gets them in one writev
    -- (what a saturated worker does anyway). Bounded: at most this much
    -- added latency, and a member's queue past 64K is written at once.
    -- Replies, direct sends, pings and closes never wait. 0 = off. Inside
    -- a window a fan-out waits only when the worker's fan-outs come closer
    -- together than the time left. A window already open at a SIGHUP ends
    -- at its old end; the next one uses the new value. 5-10 ms cuts the
    -- CPU of a worker that is busy but not saturated (tests/bench/RESULTS.md).
    fanout_delay = 0,           -- (R) seconds, e.g. "10ms"

    -- permessage-deflate (RFC 7692), negotiated when a client offers it;
    -- enabled = false or --no-compression turns it off. Both directions run without context
    -- takeover: one compressed room frame serves every member, and zlib
    -- streams are pooled per worker (an idle connection holds none).
    compression = {
        enabled = true,
        threshold = 64,         -- messages shorter than this go uncompressed
        max = "256K",           -- longer ones go uncompressed too (0: no limit)
        level = 1,              -- zlib level 0..9
        window_bits = 15,       -- the server's window 8..15 (8 runs as 9)
        mem_level = 8,          -- zlib memLevel 1..9 (deflate memory per worker)
    },

    -- protection (every refusal is counted in /metrics) -------------------------
    max_connections = 0,        -- (R) open WebSocket connections; 0 = no limit; 503 above
    max_connections_per_ip = 0, -- (R, if set at start) TCP connections per address
    accept_rate = 0,            -- (R) new connections per second, all workers; 0 = off
    accept_burst = 0,           -- (R) bucket size; 0 = accept_rate
    message_rate = 0,           -- (R) inbound messages per second per connection; 0 = off
    message_burst = 0,          -- (R) bucket size; 0 = message_rate
    message_rate_policy = "close", -- (R) over the rate: "close" (1008) | "drop"
    allowed_origins = {},       -- Origin allow-list (403 otherwise); {} = any;
                                -- requests without Origin (non-browsers) pass

    -- admin HTTP (/health /stats /metrics) ---------------------------------------
    admin = "127.0.0.1:8081",   -- ADDR:PORT, or false to turn it off
    admin_token = nil,          -- (R) bearer token for /stats and /metrics
    admin_max_clients = 256,    -- admin HTTP clients at once (the oldest idle one yields)
    -- HTTP API for backends under /api/ on the admin listener; off (404) while
    -- no token is set. The token may also come from RC_API_TOKEN.
    api_token = nil,            -- e.g. os.getenv("RC_API_TOKEN")
    api_sender = "server",      -- "sender" of messages published through the API
    api_max_body = "64K",       -- larger request bodies get 413

    -- static files (the demo page) on the main port; nil = off ------------------
    static_dir = nil,           -- e.g. "www"; GET/HEAD only, no listings
    static_max_file = "4M",     -- larger files get 403

    -- process ------------------------------------------------------------------
    daemon = false,             -- like -d (needs pidfile)
    pidfile = nil,              -- locked while running, removed at exit
    log_file = nil,             -- nil = stderr; SIGUSR1 reopens it (logrotate)
    log_level = "info",         -- (R) "debug" | "info" | "warn" | "error"
    -- the clock of the handler timings (roomcast_handler_seconds): "auto"
    -- reads the CPU's invariant TSC when it has one (cheaper), else
    -- CLOCK_MONOTONIC; "monotonic" always reads clock_gettime (e.g. a VM
    -- whose TSC is not to be trusted). The start-up log says which is used.
    clock = "auto",             -- "auto" | "monotonic"
}
