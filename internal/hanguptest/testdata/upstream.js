// upstream.js is a Node http upstream for switchboard's tests, started by
// hanguptest.StartNode. It uses node's own http module only (no npm), as
// users run it, and reports its view of every request as one JSON line per
// event on stdout:
//
//   {"event":"listening","port":N}                    first, once
//   {"event":"connection","id":C}                      a TCP connection arrived
//   {"event":"request","id":I,"conn":C,"method":M,"path":P,"rid":X-Req-Id}
//   {"event":"finished","id":I,"status":S,"writes":W,"bytes":B}
//   {"event":"aborted","id":I,"writes":W,"bytes":B,"writesAfterAbort":0}
//       req/res 'close' fired before the response finished: the peer hung up
//   {"event":"destroyed","id":I,"writes":W,"bytes":B}  this script hung up on purpose
//   {"event":"write_after_abort","id":I}               a write was attempted on a dead
//       response and refused (a bug in this script: must never appear)
//   {"event":"client_error","detail":CODE}             node's 'clientError'
//
// Every event has "t", performance.now() in ms, and "unix", the same instant
// in ms since the Unix epoch. "writes" counts body writes, "bytes" request
// body bytes read.
//
// Routes: /ok, /echo, /slow?ms=N, /stream?interval=MS&n=N (n=0: forever),
// /sse?n=N&interval=MS, /reset-before-headers[?rst=1],
// /close-mid-body?mode=chunked|length[&rst=1], /trailers; anything else 404.
//
// Arguments: --keep-alive-timeout=MS sets server.keepAliveTimeout;
// --exact-keep-alive closes an idle connection exactly MS after its last
// response (node 20.20 itself waits MS + 1000).
// The script exits when its stdin closes, so a killed test leaves no orphan.
'use strict';

const http = require('node:http');
const { performance } = require('node:perf_hooks');

function emit(obj) {
  obj.t = performance.now();
  obj.unix = performance.timeOrigin + obj.t;
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function intParam(url, name, def) {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  return Number.isFinite(n) ? n : def;
}

let nextConn = 0;
let nextReq = 0;

// Request is one request's state; every write goes through write/end so a
// dead response is never written to (the DESIGN rule "never write to a dead
// socket", applied to our own test peer).
class Request {
  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.id = ++nextReq;
    this.writes = 0;
    this.bytes = 0;
    this.writesAfterAbort = 0;
    this.closed = false;
    this.selfDestroyed = false;
    this.timers = [];
  }

  dead() {
    const s = this.res.socket;
    return this.closed || this.res.destroyed || this.res.writableEnded || (s !== null && s.destroyed);
  }

  refuse() {
    this.writesAfterAbort++;
    emit({ event: 'write_after_abort', id: this.id });
  }

  write(chunk, cb) {
    if (this.dead()) {
      this.refuse();
      return false;
    }
    this.writes++;
    this.res.write(chunk, cb);
    return true;
  }

  end(chunk) {
    if (this.dead()) {
      this.refuse();
      return false;
    }
    if (chunk !== undefined && chunk.length > 0) this.writes++;
    this.res.end(chunk);
    return true;
  }

  // destroy hangs up on the caller: FIN, or RST if rst.
  destroy(rst) {
    this.selfDestroyed = true;
    const s = this.req.socket;
    if (rst) s.resetAndDestroy();
    else s.destroy();
  }

  onClose() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    const base = { id: this.id, writes: this.writes, bytes: this.bytes };
    if (this.res.writableFinished) {
      emit({ event: 'finished', ...base, status: this.res.statusCode });
    } else if (this.selfDestroyed) {
      emit({ event: 'destroyed', ...base });
    } else {
      emit({ event: 'aborted', ...base, writesAfterAbort: this.writesAfterAbort });
    }
  }
}

// every calls fn every ms until it returns false or the request closes.
function every(r, ms, fn) {
  const tick = () => {
    if (fn()) r.timers[0] = setTimeout(tick, ms);
  };
  r.timers[0] = setTimeout(tick, ms);
}

const routes = {
  '/ok'(r) {
    r.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 3 });
    r.req.on('end', () => r.end('ok\n'));
  },

  '/echo'(r) {
    r.res.writeHead(200, { 'Content-Type': r.req.headers['content-type'] || 'application/octet-stream' });
    r.req.on('data', (c) => r.write(c));
    r.req.on('end', () => r.end());
  },

  '/slow'(r, url) {
    const ms = intParam(url, 'ms', 1000);
    r.timers.push(setTimeout(() => {
      r.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 5 });
      r.end('slow\n');
    }, ms));
  },

  '/stream'(r, url) {
    const interval = intParam(url, 'interval', 100);
    const n = intParam(url, 'n', 0);
    r.res.writeHead(200, { 'Content-Type': 'text/plain' });
    r.res.flushHeaders();
    let i = 0;
    const next = () => {
      if (!r.write(`${i}\n`)) return false;
      i++;
      if (n > 0 && i >= n) {
        r.end();
        return false;
      }
      return true;
    };
    if (next()) every(r, interval, next);
  },

  '/sse'(r, url) {
    const interval = intParam(url, 'interval', 100);
    const n = intParam(url, 'n', 0);
    r.res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    r.res.flushHeaders();
    let i = 0;
    const next = () => {
      if (!r.write(`data: ${i}\n\n`)) return false;
      i++;
      if (n > 0 && i >= n) {
        r.end();
        return false;
      }
      return true;
    };
    if (next()) every(r, interval, next);
  },

  '/reset-before-headers'(r, url) {
    const rst = url.searchParams.get('rst') === '1';
    r.req.on('end', () => r.destroy(rst));
  },

  '/close-mid-body'(r, url) {
    const rst = url.searchParams.get('rst') === '1';
    const chunked = url.searchParams.get('mode') !== 'length';
    r.req.on('end', () => {
      if (chunked) {
        r.res.writeHead(200, { 'Content-Type': 'text/plain' });
        r.write('0123456789');
        r.write('0123456789');
      } else {
        r.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 1000 });
      }
      // The callback runs once the bytes reached the kernel, so the caller
      // gets them before the hang-up.
      r.write(chunked ? '0123456789' : 'x'.repeat(100), () => r.destroy(rst));
    });
  },

  '/trailers'(r) {
    r.res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Checksum' });
    r.write('hello\n');
    r.res.addTrailers({ 'X-Checksum': 'abc' });
    r.end();
  },
};

const server = http.createServer((req, res) => {
  const r = new Request(req, res);
  const url = new URL(req.url, 'http://localhost');
  emit({ event: 'request', id: r.id, conn: req.socket.connID, method: req.method, path: url.pathname,
    rid: req.headers['x-req-id'] || '' });
  if (exactKeepAlive) {
    const socket = req.socket;
    clearTimeout(socket.idleTimer);
    res.on('finish', () => {
      // Close the connection exactly keepAliveTimeout after the response,
      // if no request came since: what node did before it added a 1s
      // grace period to the advertised timeout, and what most servers do.
      socket.idleTimer = setTimeout(() => {
        if (socket.idleSince === r.id) socket.destroy();
      }, server.keepAliveTimeout);
      socket.idleSince = r.id;
    });
    socket.idleSince = 0;
  }
  req.on('data', (c) => { r.bytes += c.length; });
  res.on('close', () => r.onClose());
  const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : null;
  if (route === null) {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 10 });
    req.on('end', () => r.end('not found\n'));
    return;
  }
  route(r, url);
});

server.on('connection', (socket) => {
  socket.connID = ++nextConn;
  emit({ event: 'connection', id: socket.connID });
});

server.on('clientError', (err, socket) => {
  emit({ event: 'client_error', detail: err.code || String(err) });
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
});

let exactKeepAlive = false;
for (const arg of process.argv.slice(2)) {
  const m = /^--keep-alive-timeout=(\d+)$/.exec(arg);
  if (m) server.keepAliveTimeout = Number(m[1]);
  if (arg === '--exact-keep-alive') exactKeepAlive = true;
}

// Exit when the Go side goes away: its stdin pipe closes (or stdout breaks).
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdout.on('error', () => process.exit(0));

server.listen(0, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));
