#!/usr/bin/env node
// A WebSocket client built on the npm package 'ws', driven by
// tests/test_node_ws.py to check txratchet's server against a client that
// real deployments use.
//
// Usage: node client.js WS_URL SCENARIO
//
// Runs one scenario against WS_URL and prints a single JSON object on
// stdout: {"ok": true, "scenario": ..., ...results} on success, or
// {"ok": false, "scenario": ..., "error": ...} on failure. The exit status is
// 0 on success, 1 when the scenario failed, 2 on a usage error and 3 when the
// scenario did not finish within TIMEOUT_MS. The server is expected to echo
// every message (same type), to close with 4002 "bye" after "close-me" and to
// answer "whoami" with a JSON description of the connection.

'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const TIMEOUT_MS = Number(process.env.TXRATCHET_NODE_TIMEOUT_MS || 10000);

// Headers sent in the opening handshake of every scenario; "whoami" reads
// them back from the server.
const EXTRA_HEADERS = {
  Cookie: 'session=abc123; theme=dark',
  'X-Test': 'node-ws',
};

class ScenarioError extends Error {}

function check(condition, message) {
  if (!condition) {
    throw new ScenarioError(message);
  }
}

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

// Open a connection; resolves with the socket and a queue of messages.
function connect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: EXTRA_HEADERS });
    const inbox = [];
    const waiters = [];
    let closed = null;
    ws.on('message', (data, isBinary) => {
      const message = { data, isBinary };
      const waiter = waiters.shift();
      if (waiter) {
        waiter.resolve(message);
      } else {
        inbox.push(message);
      }
    });
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString('utf8') };
      while (waiters.length) {
        waiters.shift().reject(
          new ScenarioError(`connection closed while waiting for a message: ${JSON.stringify(closed)}`)
        );
      }
    });
    ws.on('error', (err) => {
      reject(err);
    });
    ws.on('unexpected-response', (req, res) => {
      reject(new ScenarioError(`handshake refused: HTTP ${res.statusCode}`));
    });
    ws.once('open', () => {
      const conn = {
        ws,
        // The next message, in arrival order.
        next() {
          if (inbox.length) {
            return Promise.resolve(inbox.shift());
          }
          if (closed) {
            return Promise.reject(
              new ScenarioError(`connection closed while waiting for a message: ${JSON.stringify(closed)}`)
            );
          }
          return new Promise((res, rej) => waiters.push({ resolve: res, reject: rej }));
        },
        // Resolves with {code, reason} once the connection is closed.
        closed() {
          if (closed) {
            return Promise.resolve(closed);
          }
          return new Promise((res) => ws.once('close', () => res(closed)));
        },
      };
      resolve(conn);
    });
  });
}

// What every scenario reports about the handshake.
function handshakeInfo(ws) {
  return { extensions: ws.extensions, subprotocol: ws.protocol };
}

async function closeNormally(conn) {
  conn.ws.close(1000, 'done');
  return conn.closed();
}

function textOf(message) {
  check(!message.isBinary, 'expected a text message, got a binary one');
  return message.data.toString('utf8');
}

const scenarios = {
  // Text messages, ASCII, non-ASCII (2-, 3- and 4-byte UTF-8) and empty.
  async 'echo-text'(url) {
    const conn = await connect(url);
    const sent = ['hello', 'héllo wörld ✓ 日本語 🎉', ''];
    const received = [];
    for (const text of sent) {
      conn.ws.send(text);
      received.push(textOf(await conn.next()));
    }
    check(JSON.stringify(received) === JSON.stringify(sent), 'text echo differs');
    const close = await closeNormally(conn);
    return { ...handshakeInfo(conn.ws), sent, received, close };
  },

  // A binary message holding every byte value, and an empty one.
  async binary(url) {
    const conn = await connect(url);
    const payload = Buffer.alloc(256 * 4);
    for (let i = 0; i < payload.length; i++) {
      payload[i] = i % 256;
    }
    conn.ws.send(payload);
    const echoed = await conn.next();
    check(echoed.isBinary, 'expected a binary message, got a text one');
    check(Buffer.compare(echoed.data, payload) === 0, 'binary echo differs');
    conn.ws.send(Buffer.alloc(0));
    const empty = await conn.next();
    check(empty.isBinary && empty.data.length === 0, 'empty binary echo differs');
    const close = await closeNormally(conn);
    return {
      ...handshakeInfo(conn.ws),
      length: echoed.data.length,
      sha256: sha256(echoed.data),
      sentSha256: sha256(payload),
      emptyLength: empty.data.length,
      close,
    };
  },

  // One 1 MiB text message (bytes of UTF-8, with multi-byte characters).
  async 'large-text'(url) {
    const conn = await connect(url);
    const unit = 'abcdefghijklmnopqrstuvwxyz0123é✓'; // 26 + 4 + 2 + 3 = 35 bytes
    let text = unit.repeat(Math.ceil((1024 * 1024) / Buffer.byteLength(unit)));
    text = Buffer.from(text, 'utf8').subarray(0, 1024 * 1024 - 3).toString('utf8');
    // Cutting may have split a character: let the result be exactly 1 MiB.
    while (Buffer.byteLength(text, 'utf8') < 1024 * 1024) {
      text += 'x';
    }
    check(Buffer.byteLength(text, 'utf8') === 1024 * 1024, 'could not build 1 MiB of text');
    conn.ws.send(text);
    const echoed = textOf(await conn.next());
    check(echoed === text, 'large text echo differs');
    const close = await closeNormally(conn);
    return {
      ...handshakeInfo(conn.ws),
      bytes: Buffer.byteLength(echoed, 'utf8'),
      sha256: sha256(echoed),
      sentSha256: sha256(text),
      close,
    };
  },

  // 100 messages sent without waiting; all come back, in order.
  async pipeline(url) {
    const conn = await connect(url);
    const count = 100;
    for (let i = 0; i < count; i++) {
      conn.ws.send(`message ${i} ✓`);
    }
    const received = [];
    for (let i = 0; i < count; i++) {
      received.push(textOf(await conn.next()));
    }
    for (let i = 0; i < count; i++) {
      check(received[i] === `message ${i} ✓`, `message ${i} out of order: ${received[i]}`);
    }
    const close = await closeNormally(conn);
    return { ...handshakeInfo(conn.ws), count: received.length, first: received[0], last: received[count - 1], close };
  },

  // Fragmented messages: text split inside a UTF-8 sequence, with a ping
  // between the fragments, then a fragmented binary message.
  async fragmented(url) {
    const conn = await connect(url);
    const tail = Buffer.from('ment-é', 'utf8');
    const cut = tail.length - 1; // between the two bytes of 'é'
    let pong = null;
    conn.ws.once('pong', (data) => {
      pong = data.toString('utf8');
    });
    conn.ws.send('frag-', { fin: false });
    conn.ws.ping('between fragments');
    conn.ws.send(tail.subarray(0, cut), { binary: false, fin: false });
    conn.ws.send(tail.subarray(cut), { binary: false, fin: false });
    conn.ws.send('ed ✓', { fin: true });
    const text = textOf(await conn.next());
    check(text === 'frag-ment-éed ✓', `reassembled text differs: ${JSON.stringify(text)}`);

    const parts = [Buffer.from([0, 1, 2]), Buffer.from([253, 254]), Buffer.from([255])];
    parts.forEach((part, i) => conn.ws.send(part, { binary: true, fin: i === parts.length - 1 }));
    const binary = await conn.next();
    check(binary.isBinary, 'expected the fragmented binary message back as binary');
    check(Buffer.compare(binary.data, Buffer.concat(parts)) === 0, 'reassembled binary differs');
    check(pong === 'between fragments', `pong between fragments: ${JSON.stringify(pong)}`);
    const close = await closeNormally(conn);
    return {
      ...handshakeInfo(conn.ws),
      text,
      binary: Array.from(binary.data),
      pong,
      close,
    };
  },

  // The client closes with 4001 and a reason; report what the server echoed.
  async 'client-close'(url) {
    const conn = await connect(url);
    conn.ws.send('before close');
    const before = textOf(await conn.next());
    conn.ws.close(4001, 'client going away ✓');
    const close = await conn.closed();
    return { ...handshakeInfo(conn.ws), before, close };
  },

  // The server closes with 4002 "bye" after "close-me".
  async 'server-close'(url) {
    const conn = await connect(url);
    conn.ws.send('close-me');
    const close = await conn.closed();
    return { ...handshakeInfo(conn.ws), close };
  },

  // A ping with a payload is answered by a pong with the same payload.
  async ping(url) {
    const conn = await connect(url);
    const payload = 'ping payload ✓';
    const pong = new Promise((resolve) => conn.ws.once('pong', (data) => resolve(data.toString('utf8'))));
    conn.ws.ping(payload);
    const received = await pong;
    check(received === payload, `pong payload differs: ${JSON.stringify(received)}`);
    // An empty ping too.
    const emptyPong = new Promise((resolve) => conn.ws.once('pong', (data) => resolve(data.length)));
    conn.ws.ping();
    const emptyLength = await emptyPong;
    const close = await closeNormally(conn);
    return { ...handshakeInfo(conn.ws), pong: received, emptyPongLength: emptyLength, close };
  },

  // The server describes the connection: path, query, cookies, headers.
  async whoami(url) {
    const conn = await connect(url);
    conn.ws.send('whoami');
    const reply = textOf(await conn.next());
    let server;
    try {
      server = JSON.parse(reply);
    } catch (e) {
      throw new ScenarioError(`whoami reply is not JSON: ${reply}`);
    }
    const close = await closeNormally(conn);
    return { ...handshakeInfo(conn.ws), sentHeaders: EXTRA_HEADERS, server, close };
  },
};

function finish(status, result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(status));
}

async function main() {
  const [url, name] = process.argv.slice(2);
  if (!url || !name || !(name in scenarios)) {
    process.stderr.write(`usage: node client.js WS_URL SCENARIO\nscenarios: ${Object.keys(scenarios).join(', ')}\n`);
    process.exit(2);
  }
  const timer = setTimeout(() => {
    finish(3, { ok: false, scenario: name, error: `timed out after ${TIMEOUT_MS} ms` });
  }, TIMEOUT_MS);
  try {
    const result = await scenarios[name](url);
    clearTimeout(timer);
    finish(0, { ok: true, scenario: name, ...result });
  } catch (err) {
    clearTimeout(timer);
    finish(1, { ok: false, scenario: name, error: String((err && err.stack) || err) });
  }
}

main();
