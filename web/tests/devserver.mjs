// Development server for the patient page, with a MOCK node. Not the real
// node (that is the Rust `telenode serve`): it serves the page the way the
// node must (CSP, SRI filled in, /static/, /healthz) and fakes just enough of
// the signalling protocol (docs/PROTOCOL.md) for one consultation to try the
// page by hand or from tests/e2e.mjs, with the fake doctor of
// tests/doctor.html. No dependencies.
//
//   node web/tests/devserver.mjs [port]      # prints the patient and doctor links
//
// Test hooks (dev server only): GET /_test/state, GET /_test/tamper?n=K
// (alter the K-th d2p envelope relayed from now on), GET /_test/drop?role=R
// (cut a seat's TCP connection), GET /_test/reset.

import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TESTS = path.join(WEB, 'tests');

/** The CSP the node must send with the page (see the brief / DESIGN.md). */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; " +
  "form-action 'none'; frame-ancestors 'none'";

const STATIC = {
  'app.js': 'text/javascript; charset=utf-8',
  'seal.js': 'text/javascript; charset=utf-8',
  'i18n.js': 'text/javascript; charset=utf-8',
  'check.js': 'text/javascript; charset=utf-8',
  'call.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

const b64u = (buf) => Buffer.from(buf).toString('base64url');

/** index.html with every {{sri:NAME}} replaced by sha384-BASE64 of web/NAME. */
export function renderIndex() {
  const html = readFileSync(path.join(WEB, 'index.html'), 'utf8');
  return html.replace(/\{\{sri:([A-Za-z0-9._-]+)\}\}/g, (_m, name) => {
    if (!Object.prototype.hasOwnProperty.call(STATIC, name)) throw new Error('SRI for unknown file ' + name);
    return 'sha384-' + createHash('sha384').update(readFileSync(path.join(WEB, name))).digest('base64');
  });
}

function securityHeaders(extra) {
  return Object.assign(
    {
      'Content-Security-Policy': CSP,
      'Referrer-Policy': 'no-referrer',
      'Permissions-Policy': 'camera=(self), microphone=(self), geolocation=(), display-capture=()',
      'X-Content-Type-Options': 'nosniff',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    },
    extra,
  );
}

// ------------------------------------------------------------ tiny WebSocket

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsAccept(req, socket, onOpen) {
  const key = req.headers['sec-websocket-key'];
  if (!key) return socket.destroy();
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  const conn = {
    open: true,
    onmessage: () => {},
    onclose: () => {},
    send(text) {
      if (!conn.open) return;
      const payload = Buffer.from(text, 'utf8');
      let head;
      if (payload.length < 126) head = Buffer.from([0x81, payload.length]);
      else if (payload.length < 65536) head = Buffer.from([0x81, 126, payload.length >> 8, payload.length & 255]);
      else {
        head = Buffer.alloc(10);
        head[0] = 0x81;
        head[1] = 127;
        head.writeBigUInt64BE(BigInt(payload.length), 2);
      }
      socket.write(Buffer.concat([head, payload]));
    },
    /** Drop the TCP connection without a close frame (network loss). */
    destroy() {
      socket.destroy();
    },
    close(code = 1000) {
      if (!conn.open) return;
      conn.open = false;
      socket.end(Buffer.from([0x88, 2, code >> 8, code & 255]));
      conn.onclose();
    },
  };
  let buf = Buffer.alloc(0);
  let fragments = [];
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = buf[0] & 0x80;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = buf[1] & 0x80;
      if (buf.length < off + (masked ? 4 : 0) + len) return;
      let payload = buf.subarray(off + (masked ? 4 : 0), off + (masked ? 4 : 0) + len);
      if (masked) {
        const mask = buf.subarray(off, off + 4);
        payload = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
      }
      buf = buf.subarray(off + (masked ? 4 : 0) + len);
      if (op === 8) return conn.close(1000);
      if (op === 9) {
        socket.write(Buffer.concat([Buffer.from([0x8a, payload.length]), payload]));
        continue;
      }
      if (op === 1 || op === 0) {
        fragments.push(payload);
        if (fin) {
          const text = Buffer.concat(fragments).toString('utf8');
          fragments = [];
          conn.onmessage(text);
        }
      }
    }
  });
  socket.on('close', () => {
    if (conn.open) {
      conn.open = false;
      conn.onclose();
    }
  });
  socket.on('error', () => {});
  onOpen(conn);
}

// ---------------------------------------------------------------- mock node

export function createMockNode(opts = {}) {
  const node = {
    token: opts.token || b64u(randomBytes(32)),
    linkKey: opts.linkKey || b64u(randomBytes(32)),
    consultation: b64u(randomBytes(16)),
    iceServers: opts.iceServers || [],
    reset() {
      node.state = 'created';
      node.doctor = null;
      node.patient = null;
      node.resume = null;
      node.connected = new Set();
      node.tamperIn = 0; // alter the N-th d2p envelope from now on (0: never)
      node.log = []; // message types seen, for tests (no payloads)
    },
  };
  node.reset();

  const send = (conn, msg) => conn && conn.send(JSON.stringify(Object.assign({ v: 1 }, msg)));
  const fatal = (conn, code) => {
    send(conn, { type: 'error', code, message: code });
    conn.close(1008);
  };
  const welcome = (conn, role) =>
    send(conn, {
      type: 'welcome',
      role,
      consultation: node.consultation,
      state: node.state,
      peer_present: role === 'doctor' ? !!node.patient : !!node.doctor,
      ...(role === 'patient' ? { resume: node.resume } : {}),
      ice_servers: node.iceServers,
    });
  const admittedish = () => node.state === 'admitted' || node.state === 'in_call';

  node.accept = (conn) => {
    let role = null;
    conn.onmessage = (text) => {
      if (text.length > 64 * 1024) return fatal(conn, 'too_large');
      let m;
      try {
        m = JSON.parse(text);
      } catch (_e) {
        return fatal(conn, 'bad_request');
      }
      if (m.v !== 1) return fatal(conn, 'unsupported_version');
      node.log.push((role || '?') + ':' + m.type);
      if (!role) {
        if (m.type !== 'hello') return fatal(conn, 'bad_request');
        if (m.role === 'patient') {
          if (m.token !== node.token || node.state === 'ended') return fatal(conn, 'bad_token');
          const resumed = node.resume && m.resume === node.resume;
          if (node.patient) {
            if (!resumed) return fatal(conn, 'seat_taken');
            const old = node.patient;
            node.patient = null;
            fatal(old, 'replaced');
          }
          if (!resumed || !admittedish()) node.state = 'waiting';
          node.resume = resumed ? node.resume : b64u(randomBytes(32));
          node.patient = conn;
          role = 'patient';
          welcome(conn, 'patient');
          if (node.state === 'waiting') send(node.doctor, { type: 'patient_waiting' });
          else send(node.doctor, { type: 'peer_joined' });
          return;
        }
        if (m.role === 'doctor') {
          if (m.consultation !== node.consultation) return fatal(conn, 'forbidden');
          if (node.doctor) {
            const old = node.doctor;
            node.doctor = null;
            fatal(old, 'replaced');
          }
          node.doctor = conn;
          role = 'doctor';
          welcome(conn, 'doctor');
          if (node.state === 'waiting') send(conn, { type: 'patient_waiting' });
          else if (admittedish() && node.patient) send(node.patient, { type: 'peer_joined' });
          return;
        }
        return fatal(conn, 'bad_request');
      }
      const other = role === 'doctor' ? node.patient : node.doctor;
      switch (m.type) {
        case 'ping':
          return send(conn, { type: 'pong' });
        case 'sealed': {
          const ok = role === 'patient' ? node.state !== 'created' : admittedish();
          if (!ok) return send(conn, { type: 'error', code: 'unexpected', message: 'unexpected' });
          let ct = m.ct;
          if (role === 'doctor' && node.tamperIn > 0 && --node.tamperIn === 0) {
            // Flip one bit in the middle of the ciphertext: the patient must fail closed.
            const b = Buffer.from(ct, 'base64url');
            b[b.length >> 1] ^= 1;
            ct = b64u(b);
          }
          return send(other, { type: 'sealed', epoch: m.epoch, seq: m.seq, ct });
        }
        case 'admit':
          if (role !== 'doctor' || node.state !== 'waiting') {
            return send(conn, { type: 'error', code: 'unexpected', message: 'unexpected' });
          }
          node.state = 'admitted';
          send(node.doctor, { type: 'admitted' });
          return send(node.patient, { type: 'admitted' });
        case 'connected':
          node.connected.add(role);
          if (node.connected.size === 2 && node.state === 'admitted') node.state = 'in_call';
          return;
        case 'leave':
          if (role !== 'patient') return send(conn, { type: 'error', code: 'unexpected', message: 'unexpected' });
          node.patient = null;
          node.resume = null;
          if (node.state === 'waiting') node.state = 'created';
          send(node.doctor, { type: 'peer_left' });
          return conn.close(1000);
        case 'end':
          if (role !== 'doctor') return send(conn, { type: 'error', code: 'unexpected', message: 'unexpected' });
          node.state = 'ended';
          for (const c of [node.doctor, node.patient]) {
            send(c, { type: 'ended', reason: 'doctor_ended' });
            if (c) c.close(1000);
          }
          node.doctor = node.patient = null;
          return;
        default:
          return fatal(conn, 'bad_request');
      }
    };
    conn.onclose = () => {
      if (role === 'patient' && node.patient === conn) {
        node.patient = null;
        node.connected.delete('patient');
        if (node.state === 'waiting') node.state = 'created';
        else send(node.doctor, { type: 'peer_left' });
      } else if (role === 'doctor' && node.doctor === conn) {
        node.doctor = null;
        node.connected.delete('doctor');
        if (admittedish()) send(node.patient, { type: 'peer_left' });
      }
    };
  };
  return node;
}

// ------------------------------------------------------------------- server

export function startServer(port = 0, opts = {}) {
  const node = createMockNode(opts);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    try {
      if (req.method !== 'GET') {
        res.writeHead(405).end();
      } else if (p.startsWith('/c/')) {
        const body = renderIndex();
        res.writeHead(200, securityHeaders({ 'Content-Type': 'text/html; charset=utf-8' })).end(body);
      } else if (p.startsWith('/static/') && Object.prototype.hasOwnProperty.call(STATIC, p.slice(8))) {
        const name = p.slice(8);
        res.writeHead(200, securityHeaders({ 'Content-Type': STATIC[name] })).end(readFileSync(path.join(WEB, name)));
      } else if (p === '/healthz') {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' }).end('ok');
      } else if (p === '/doctor') {
        res.writeHead(200, securityHeaders({ 'Content-Type': 'text/html; charset=utf-8' })).end(readFileSync(path.join(TESTS, 'doctor.html')));
      } else if (p === '/doctor.js') {
        res.writeHead(200, securityHeaders({ 'Content-Type': 'text/javascript' })).end(readFileSync(path.join(TESTS, 'doctor.js')));
      } else if (p === '/_test/state') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(
          JSON.stringify({ state: node.state, patient: !!node.patient, doctor: !!node.doctor, log: node.log }),
        );
      } else if (p === '/_test/tamper') {
        node.tamperIn = Number(url.searchParams.get('n') || '1');
        res.writeHead(200).end('ok');
      } else if (p === '/_test/drop') {
        const c = url.searchParams.get('role') === 'doctor' ? node.doctor : node.patient;
        if (c) c.destroy();
        res.writeHead(200).end(c ? 'dropped' : 'nobody');
      } else if (p === '/_test/reset') {
        for (const c of [node.doctor, node.patient]) if (c) c.close(1001);
        node.reset();
        res.writeHead(200).end('ok');
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      }
    } catch (e) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    }
  });
  server.on('upgrade', (req, socket) => {
    if (new URL(req.url, 'http://x').pathname !== '/ws') return socket.destroy();
    wsAccept(req, socket, (conn) => node.accept(conn));
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({
        server,
        node,
        base,
        patientUrl: `${base}/c/${node.token}#${node.linkKey}`,
        doctorUrl: `${base}/doctor#${node.consultation}.${node.linkKey}`,
        close: () => new Promise((r) => server.close(r)),
      });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const s = await startServer(Number(process.argv[2] || 8080));
  console.log('patient: ' + s.patientUrl);
  console.log('doctor:  ' + s.doctorUrl + '   (admits automatically; add ?manual before # to click)');
}
