// roomcast.js - a dependency-free browser client for roomcast's default
// protocol (scripts/chat.lua). A plain ES module: import it, no build step.
//
//   import { RoomcastClient } from "/roomcast.js";
//   const rc = new RoomcastClient("ws://" + location.host + "/ws", { user: "alice" });
//   rc.addEventListener("message", (e) => console.log(e.detail.room, e.detail.msg));
//   rc.connect();
//   await rc.join("lobby");
//   await rc.broadcast("lobby", "hi");
//
// What it does for you:
// - Reconnects after any drop with exponential backoff and full jitter
//   (delay = random between base/2 and base, base doubling up to maxDelay).
// - After a reconnect it joins its rooms again with `since` (the last seq it
//   delivered) and `epoch`, so the server replays what it missed. The server
//   sends `joined`, the replay, then live messages, in seq order without
//   duplicates; the client still drops any seq <= the last one delivered (a
//   safety net, e.g. against an older server).
// - It tells the app when continuity is lost: a "recovery" event with
//   recovered: false and a reason: "reset" (the server's seq went backwards:
//   its history was lost), "epoch" (the room's epoch changed), "gap" (the
//   server says `recovered: false` in `joined` with the same epoch, or the
//   replay starts past the next seq: not every missed message was replayed).
//   When the server does not replay (`recovered: false`, same epoch; also on
//   a first join into a room whose history was trimmed) it fetches the newest
//   `refillLimit` (default 100) messages after `since` with `history` and
//   delivers them in order before the live messages that arrived meanwhile.
// - history(room, {since | before, limit}) reads a room's history; `before`
//   pages back from the oldest message shown.
// - request(msg) sends msg with a fresh `id` and returns a promise settled by
//   the reply carrying that id: the reply itself, or a RoomcastError with the
//   server's stable `code` (or "timeout" / "disconnected").
//
// Events (EventTarget; the payload is event.detail):
//   "state"    {state, attempt, delay}   connecting | open | reconnecting | closed
//   "message"  {room, msg}               a room broadcast (deduplicated, in order)
//   "direct"   {msg}                     a direct message
//   "joined"   {room, seq, epoch, recovered, rejoin}
//   "recovery" {room, recovered, reason, since, seq}   after each rejoin
//   "presence" {room, users, count}
//   "error"    {code, message, id}       an error reply no request was waiting for
//   "raw"      {msg}                     anything else the server sent

export class RoomcastError extends Error {
    constructor(code, message) {
        super(message || code);
        this.name = "RoomcastError";
        this.code = code;
    }
}

export class RoomcastClient extends EventTarget {
    constructor(url, opts = {}) {
        super();
        this.url = url;
        this.user = opts.user || null;
        this.minDelay = opts.minDelay ?? 250;
        this.maxDelay = opts.maxDelay ?? 10000;
        this.requestTimeout = opts.requestTimeout ?? 10000;
        // After a rejoin the server would not fully replay: fetch up to this
        // many missed messages with `history` (0: do not).
        this.refillLimit = opts.refillLimit ?? 100;
        this.WebSocketImpl = opts.WebSocket || globalThis.WebSocket;
        this.state = "closed";
        this.ws = null;
        this.attempt = 0;
        this.nextId = 1;
        this.pending = new Map(); // id -> {resolve, reject, timer}
        this.rooms = new Map(); // room -> {seq, epoch, wanted}
        this.timer = null;
        this.stopped = true;
    }

    // ------------------------------------------------------------ lifecycle

    connect() {
        this.stopped = false;
        if (this.ws) return;
        this.setState("connecting");
        let ws;
        try {
            ws = new this.WebSocketImpl(this.url);
        } catch (err) {
            this.scheduleReconnect();
            return;
        }
        this.ws = ws;
        ws.onopen = () => this.onOpen();
        ws.onmessage = (ev) => this.onFrame(ev.data);
        ws.onclose = () => this.onClose(ws);
        ws.onerror = () => {}; // a close always follows
    }

    close() {
        this.stopped = true;
        clearTimeout(this.timer);
        this.timer = null;
        if (this.ws) this.ws.close(1000, "bye");
        this.ws = null;
        this.failPending("disconnected", "the client was closed");
        this.setState("closed");
    }

    // Drops the connection as if the network failed (the client reconnects).
    // For tests and demos.
    drop() {
        if (this.ws) this.ws.close(4000, "dropped by the client");
    }

    setState(state, extra = {}) {
        this.state = state;
        this.emit("state", { state, attempt: this.attempt, ...extra });
    }

    onOpen() {
        this.attempt = 0;
        this.setState("open");
        for (const [room, r] of this.rooms) {
            // A room joined before the first open is a first join, not a rejoin.
            if (r.wanted) this.sendJoin(room, r.seq > 0 || r.joinedOnce === true).catch(() => {});
        }
    }

    onClose(ws) {
        if (ws !== this.ws) return;
        this.ws = null;
        this.failPending("disconnected", "the connection was lost");
        if (this.stopped) {
            this.setState("closed");
            return;
        }
        this.scheduleReconnect();
    }

    scheduleReconnect() {
        this.ws = null;
        const base = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
        const delay = Math.round(base / 2 + Math.random() * (base / 2));
        this.attempt++;
        this.setState("reconnecting", { delay });
        clearTimeout(this.timer);
        this.timer = setTimeout(() => {
            this.timer = null;
            if (!this.stopped) this.connect();
        }, delay);
    }

    // ------------------------------------------------------------- requests

    send(msg) {
        if (!this.ws || this.ws.readyState !== 1) {
            throw new RoomcastError("disconnected", "not connected");
        }
        this.ws.send(JSON.stringify(msg));
    }

    request(msg, timeout = this.requestTimeout) {
        const id = "r" + this.nextId++;
        return new Promise((resolve, reject) => {
            try {
                this.send({ ...msg, id });
            } catch (err) {
                reject(err);
                return;
            }
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new RoomcastError("timeout", "no reply within " + timeout + " ms"));
            }, timeout);
            this.pending.set(id, { resolve, reject, timer });
        });
    }

    failPending(code, message) {
        for (const [, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new RoomcastError(code, message));
        }
        this.pending.clear();
    }

    // ---------------------------------------------------------------- rooms

    // Joins a room (now, or as soon as the connection is open) and keeps it
    // joined across reconnects. Resolves with the first `joined` reply.
    join(room) {
        if (!this.rooms.has(room)) this.rooms.set(room, { seq: 0, epoch: null, wanted: true });
        const r = this.rooms.get(room);
        r.wanted = true;
        if (this.state === "open") return this.sendJoin(room, false);
        return new Promise((resolve, reject) => {
            r.waiters = r.waiters || [];
            r.waiters.push({ resolve, reject });
        });
    }

    sendJoin(room, rejoin) {
        const r = this.rooms.get(room);
        const msg = { type: "join", room_id: room, since: r.seq };
        if (this.user) msg.user_id = this.user;
        if (r.epoch != null) msg.epoch = r.epoch;
        r.rejoin = rejoin;
        r.since = r.seq;
        r.checkGap = rejoin && r.seq > 0;
        const p = this.request(msg);
        const waiters = r.waiters || [];
        r.waiters = [];
        p.then((v) => waiters.forEach((w) => w.resolve(v)),
            (e) => waiters.forEach((w) => w.reject(e)));
        return p;
    }

    async leave(room) {
        const r = this.rooms.get(room);
        if (r) r.wanted = false;
        this.rooms.delete(room);
        return this.request({ type: "leave", room_id: room });
    }

    broadcast(room, content) {
        return this.request({ type: "broadcast", room_id: room, content });
    }

    direct(to, content) {
        return this.request({ type: "direct", to, content });
    }

    history(room, { since, before, limit } = {}) {
        const msg = { type: "history", room_id: room };
        if (since != null) msg.since = since;
        if (before != null) msg.before = before;
        if (limit != null) msg.limit = limit;
        return this.request(msg);
    }

    presence(room) {
        return this.request({ type: "presence", room_id: room });
    }

    lastSeq(room) {
        const r = this.rooms.get(room);
        return r ? r.seq : 0;
    }

    // -------------------------------------------------------------- inbound

    emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    onFrame(data) {
        let msg;
        try {
            msg = JSON.parse(data);
        } catch {
            this.emit("raw", { msg: data });
            return;
        }
        if (msg === null || typeof msg !== "object") {
            this.emit("raw", { msg });
            return;
        }
        switch (msg.type) {
            case "joined":
                this.onJoined(msg);
                break;
            case "broadcast":
                this.onBroadcast(msg);
                return; // broadcasts carry no request id (acks do)
            case "direct":
                this.emit("direct", { msg });
                return;
            case "presence":
                this.emit("presence", { room: msg.room_id, users: msg.users, count: msg.count });
                break;
            case "error":
                if (!this.settle(msg)) {
                    this.emit("error", { code: msg.code, message: msg.message, id: msg.id });
                }
                return;
            default:
                if (msg.id == null) this.emit("raw", { msg });
        }
        this.settle(msg);
    }

    // Settles the request with msg.id; true if one was waiting.
    settle(msg) {
        if (msg.id == null) return false;
        const p = this.pending.get(String(msg.id));
        if (!p) return false;
        this.pending.delete(String(msg.id));
        clearTimeout(p.timer);
        if (msg.type === "error") p.reject(new RoomcastError(msg.code, msg.message));
        else p.resolve(msg);
        return true;
    }

    onJoined(msg) {
        const room = msg.room_id;
        const r = this.rooms.get(room);
        if (!r) return;
        let recovered = true;
        let reason = null;
        if (typeof msg.seq === "number" && msg.seq < r.seq) {
            // The room's seq went backwards: its history was lost (a restart
            // without durable history). Start over from the server's count.
            recovered = false;
            reason = "reset";
        } else if (r.epoch != null && msg.epoch != null && msg.epoch !== r.epoch) {
            recovered = false;
            reason = "epoch";
        } else if (msg.recovered === false) {
            // Same history, but the server would not replay all we missed
            // (more than it replays, or some of it is gone): refill below.
            recovered = false;
            reason = "gap";
        }
        if (msg.epoch != null) r.epoch = msg.epoch;
        r.joinedOnce = true;
        if (!recovered) {
            r.seq = typeof msg.seq === "number" ? msg.seq : 0;
            r.checkGap = false;
        }
        this.emit("joined", { room, seq: msg.seq, epoch: msg.epoch, recovered, rejoin: !!r.rejoin });
        if (r.rejoin) {
            this.emit("recovery", { room, recovered, reason, since: r.since, seq: msg.seq });
        }
        if (reason === "gap" && this.refillLimit > 0 && r.seq > r.since) {
            this.refill(room, r, r.since, r.seq);
        }
    }

    // Delivers the newest refillLimit messages history still holds between
    // since and upto (the seq of `joined`), in order, before the live
    // messages that arrive meanwhile. Older ones: history with `before`.
    refill(room, r, since, upto) {
        const held = [];
        r.held = held;
        const done = () => {
            if (r.held === held) r.held = null;
            for (const m of held) this.onBroadcast(m);
        };
        this.history(room, { before: upto + 1, limit: this.refillLimit }).then((h) => {
            for (const m of h.messages || []) {
                if (typeof m.seq === "number" && m.seq > since && m.seq <= upto) {
                    this.emit("message", { room, msg: m });
                }
            }
            done();
        }, done);
    }

    onBroadcast(msg) {
        const room = msg.room_id;
        const r = this.rooms.get(room);
        if (r && r.held) {
            r.held.push(msg); // a refill is in flight: after it, in order
            return;
        }
        const seq = msg.seq;
        if (r && typeof seq === "number") {
            if (seq <= r.seq) return; // a replayed or repeated message: already delivered
            if (r.checkGap) {
                // The first message after a rejoin: anything but seq+1 means
                // the server no longer had every missed message.
                r.checkGap = false;
                if (seq > r.seq + 1) {
                    this.emit("recovery", {
                        room, recovered: false, reason: "gap", since: r.seq, seq,
                    });
                }
            }
            r.seq = seq;
        }
        this.emit("message", { room, msg });
    }
}
