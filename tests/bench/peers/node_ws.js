// node_ws.js - benchmark peer on the npm `ws` package: echo or one-room fan-out.
//
//   node node_ws.js echo|fanout|fanout-deflate PORT
//
// echo:   every message goes back to its sender, same opcode.
// fanout: every connection is a member of one room; every message received is
//         sent to every connection (the sender too), binary stays binary.
// The frame is built once per message (WebSocket.Sender.frame) and the same
// buffers are written to every member, as roomcast does. A member whose socket
// buffer holds more than 4 MiB is skipped for that message (slow consumer).
// fanout-deflate: permessage-deflate on (level 1, threshold 64 bytes, ws's
// defaults otherwise: context takeover, zlib on libuv's thread pool); ws can
// only compress per connection, so every member gets its own ws.send.
'use strict';
let ws;
try {
  ws = require('ws');
} catch (e) {
  console.error('node_ws: the npm package "ws" is missing (run tests/bench/deps.sh)');
  process.exit(3);
}
const [mode, portArg] = process.argv.slice(2);
if ((mode !== 'echo' && mode !== 'fanout' && mode !== 'fanout-deflate') || !portArg) {
  console.error('usage: node node_ws.js echo|fanout|fanout-deflate PORT');
  process.exit(2);
}
const SLOW_LIMIT = 4 << 20;
const wss = new ws.WebSocketServer({
  host: '127.0.0.1',
  port: Number(portArg),
  perMessageDeflate: mode === 'fanout-deflate'
    ? { threshold: 64, zlibDeflateOptions: { level: 1 } } : false,
  clientTracking: true,
  maxPayload: 16 << 20,
});
let dropped = 0;
wss.on('connection', (sock) => {
  sock.on('error', () => {});
  if (mode === 'echo') {
    sock.on('message', (data, isBinary) => sock.send(data, { binary: isBinary }));
    return;
  }
  if (mode === 'fanout-deflate') {
    sock.on('message', (data, isBinary) => {
      for (const m of wss.clients) {
        if (m.readyState !== ws.WebSocket.OPEN) continue;
        if (m._socket.writableLength > SLOW_LIMIT) { dropped++; continue; }
        m.send(data, { binary: isBinary });
      }
    });
    return;
  }
  sock.on('message', (data, isBinary) => {
    const frame = ws.Sender.frame(data, {
      fin: true, rsv1: false, opcode: isBinary ? 2 : 1, mask: false, readOnly: true,
    });
    for (const m of wss.clients) {
      if (m.readyState !== ws.WebSocket.OPEN) continue;
      if (m._socket.writableLength > SLOW_LIMIT) { dropped++; continue; }
      m._socket.cork();
      m._socket.write(frame[0]);
      if (frame.length > 1) m._socket.write(frame[1]);
      m._socket.uncork();
    }
  });
});
wss.on('listening', () => console.log(`listening ${wss.address().port}`));
const stop = () => {
  if (dropped) console.error(`node_ws: dropped ${dropped} messages for slow members`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
