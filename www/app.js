// app.js - the demo chat page (index.html) on top of roomcast.js.
import { RoomcastClient } from "/roomcast.js";

const $ = (id) => document.getElementById(id);
const view = new Map(); // room -> {messages: [msg], unread}
let rc = null;
let current = null;
let me = null;

function wsUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + "/ws";
}

function el(tag, attrs = {}, text = "") {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
}

function time(ts) {
    const d = ts ? new Date(ts) : new Date();
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function renderRooms() {
    const ul = $("rooms");
    ul.replaceChildren();
    for (const [room, v] of view) {
        const li = el("li", { "data-room": room, class: room === current ? "current" : "" }, "# " + room);
        if (v.unread) li.append(el("span", { class: "unread" }, String(v.unread)));
        li.onclick = () => select(room);
        ul.append(li);
    }
}

function renderMessage(room, item) {
    if (room !== current) return;
    const ol = $("messages");
    ol.append(messageNode(item));
    ol.scrollTop = ol.scrollHeight;
}

function messageNode(item) {
    const li = el("li", { class: "msg " + item.kind });
    if (item.seq != null) li.dataset.seq = item.seq;
    li.append(el("span", { class: "ts" }, time(item.ts)));
    if (item.sender) li.append(el("span", { class: "sender" }, item.sender));
    li.append(el("span", { class: "content" }, item.text));
    return li;
}

// The lowest seq shown in a room (0: none).
function oldestSeq(v) {
    let oldest = 0;
    for (const m of v.messages) if (m.seq != null && (oldest === 0 || m.seq < oldest)) oldest = m.seq;
    return oldest;
}

function renderOlder() {
    const v = view.get(current);
    $("older").hidden = !v || v.noOlder || oldestSeq(v) <= 1;
}

function renderAll() {
    const v = view.get(current);
    $("messages").replaceChildren(...(v ? v.messages.map(messageNode) : []));
    $("messages").scrollTop = $("messages").scrollHeight;
    renderOlder();
}

function chatItem(msg) {
    const text = msg.content != null ? String(msg.content) : JSON.stringify(msg.data);
    return { kind: "chat", seq: msg.seq, ts: msg.ts, sender: msg.sender, text };
}

// Pages back through the room's history with `before` (the oldest seq shown).
async function loadOlder() {
    const room = current;
    const v = view.get(room);
    const before = v ? oldestSeq(v) : 0;
    if (before <= 1) return;
    try {
        const h = await rc.history(room, { before, limit: 50 });
        const older = (h.messages || []).filter((m) => typeof m.seq === "number" && m.seq < before);
        if (older.length === 0) v.noOlder = true;
        v.messages.unshift(...older.map(chatItem));
        if (room === current) {
            const ol = $("messages");
            ol.prepend(...older.map((m) => messageNode(chatItem(m))));
            renderOlder();
        }
    } catch (err) {
        note(room, "could not load older messages: " + (err.code || err.message));
    }
}

function add(room, item) {
    if (!view.has(room)) view.set(room, { messages: [], unread: 0 });
    const v = view.get(room);
    v.messages.push(item);
    if (room !== current && item.kind === "chat") {
        v.unread++;
        renderRooms();
    }
    renderMessage(room, item);
    if (room === current && item.seq != null) renderOlder();
}

function note(room, text) {
    add(room, { kind: "note", text });
}

function banner(text) {
    const b = $("banner");
    b.textContent = text;
    b.hidden = !text;
}

function select(room) {
    current = room;
    const v = view.get(room);
    if (v) v.unread = 0;
    renderRooms();
    renderAll();
    refreshPresence();
}

async function refreshPresence() {
    if (!current || !rc || rc.state !== "open") return;
    try {
        const p = await rc.presence(current);
        $("members").replaceChildren(...p.users.map((u) =>
            el("li", { class: u === me ? "me" : "" }, u)));
        $("member-count").textContent = "(" + p.count + ")";
    } catch {
        /* not connected right now: the next tick tries again */
    }
}

async function joinRoom(room) {
    if (!view.has(room)) view.set(room, { messages: [], unread: 0 });
    select(room);
    try {
        await rc.join(room);
    } catch (err) {
        note(room, "could not join: " + (err.code || err.message));
    }
}

function start(name, room) {
    me = name;
    // A room with more history than the server replays shows its newest 50;
    // "Older messages" pages back (history with before).
    rc = new RoomcastClient(wsUrl(), { user: name, refillLimit: 50 });
    window.roomcast = rc; // for the console (and the browser tests)
    rc.addEventListener("state", (e) => {
        const s = $("state");
        const { state, delay } = e.detail;
        s.dataset.state = state;
        s.className = "state " + state;
        s.textContent = state === "reconnecting" ? `reconnecting in ${(delay / 1000).toFixed(1)} s` : state;
        if (state === "open") refreshPresence();
    });
    rc.addEventListener("message", (e) => {
        const { room, msg } = e.detail;
        add(room, chatItem(msg));
    });
    rc.addEventListener("direct", (e) => {
        const m = e.detail.msg;
        const text = m.content != null ? String(m.content) : JSON.stringify(m.data);
        add(current, { kind: "direct", sender: "from " + m.from, text });
    });
    rc.addEventListener("recovery", (e) => {
        const { room, recovered, reason } = e.detail;
        if (recovered) {
            banner("");
            return;
        }
        const why = { gap: "the server no longer had every missed message",
            reset: "the server's history was reset", epoch: "the room's history changed",
            server: "the server could not replay what was missed" }[reason] || reason;
        note(room, "Some messages may be missing: " + why + ".");
        banner(`#${room}: some messages may be missing (${why}).`);
    });
    rc.addEventListener("error", (e) => note(current, "error: " + e.detail.code + ": " + e.detail.message));
    rc.connect();
    $("login").hidden = true;
    $("chat").hidden = false;
    joinRoom(room);
    setInterval(refreshPresence, 3000);
}

$("login-form").onsubmit = (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    const room = $("first-room").value.trim() || "lobby";
    if (name) start(name, room);
};

$("older").onclick = () => loadOlder();

$("join-form").onsubmit = (e) => {
    e.preventDefault();
    const room = $("join-room").value.trim();
    $("join-room").value = "";
    if (room) joinRoom(room);
};

$("send-form").onsubmit = async (e) => {
    e.preventDefault();
    const text = $("text").value;
    if (!text || !current) return;
    try {
        await rc.broadcast(current, text);
        $("text").value = "";
    } catch (err) {
        note(current, "not sent (" + (err.code || err.message) + "): try again");
    }
};

$("direct-form").onsubmit = async (e) => {
    e.preventDefault();
    const to = $("direct-to").value.trim();
    const text = $("direct-text").value;
    if (!to || !text) return;
    try {
        const ack = await rc.direct(to, text);
        add(current, { kind: "direct", sender: "to " + to, text: `${text} (delivered to ${ack.delivered})` });
        $("direct-text").value = "";
    } catch (err) {
        note(current, "direct message not sent: " + (err.code || err.message));
    }
};

const params = new URLSearchParams(location.search);
if (params.get("name")) start(params.get("name"), params.get("room") || "lobby");
