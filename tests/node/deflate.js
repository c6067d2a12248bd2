#!/usr/bin/env node
// permessage-deflate (RFC 7692) against txratchet's echo server with the npm
// package 'ws', driven by tests/test_deflate_e2e.py.
//
// Usage: node deflate.js WS_URL PER_MESSAGE_DEFLATE_JSON
//
// PER_MESSAGE_DEFLATE_JSON is ws's perMessageDeflate client option (an
// object such as {"serverNoContextTakeover": true, "threshold": 0}, or
// false to offer nothing). The client offers it, echoes a few messages
// (small text, binary, 1 MiB compressible text, 256 KiB of random bytes, the
// same compressible text again to exercise context takeover), closes with
// 1000, and prints one JSON line: {"ok": true, "response": ...,
// "extensions": ..., "params": ..., "echoes": [...], "close": ...} or
// {"ok": false, "error": ...}. Exit status 0 on success, 1 on failure, 2 on a
// usage error, 3 on timeout.

'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const TIMEOUT_MS = Number(process.env.TXRATCHET_NODE_TIMEOUT_MS || 10000);

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function messages() {
  const unit = 'permessage-deflate squeezes repetitive text, é✓ ';
  let big = unit.repeat(Math.ceil((1024 * 1024) / Buffer.byteLength(unit)));
  big = Buffer.from(big, 'utf8').subarray(0, 1024 * 1024 - 3).toString('utf8');
  while (Buffer.byteLength(big, 'utf8') < 1024 * 1024) {
    big += 'x';
  }
  return [
    { name: 'small-text', data: 'héllo ✓' },
    { name: 'binary', data: Buffer.from([0, 1, 2, 255, 254, 253, 0, 0, 0, 0]) },
    { name: 'large-text', data: big },
    { name: 'random', data: crypto.randomBytes(256 * 1024) },
    { name: 'large-text-again', data: big },
    { name: 'empty-text', data: '' },
  ];
}

function run(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: options });
    const result = { response: null };
    const todo = messages();
    const echoes = [];
    let current = null;
    ws.on('upgrade', (res) => {
      result.response = res.headers['sec-websocket-extensions'] || null;
    });
    ws.on('unexpected-response', (req, res) => {
      reject(new Error(`handshake refused: HTTP ${res.statusCode}`));
    });
    ws.on('error', reject);
    function next() {
      current = todo.shift();
      if (!current) {
        ws.close(1000, 'done');
        return;
      }
      ws.send(current.data, { binary: Buffer.isBuffer(current.data) });
    }
    ws.on('open', () => {
      result.extensions = ws.extensions;
      const pmd = ws._extensions['permessage-deflate'];
      result.params = pmd ? pmd.params : null;
      next();
    });
    ws.on('message', (data, isBinary) => {
      const sent = current.data;
      const sentBinary = Buffer.isBuffer(sent);
      const sentBytes = sentBinary ? sent : Buffer.from(sent, 'utf8');
      echoes.push({
        name: current.name,
        sameType: isBinary === sentBinary,
        same: Buffer.compare(data, sentBytes) === 0,
        bytes: data.length,
        sha256: sha256(data),
      });
      next();
    });
    ws.on('close', (code, reason) => {
      result.echoes = echoes;
      result.close = { code, reason: reason.toString('utf8') };
      resolve(result);
    });
  });
}

async function main() {
  const [url, json] = process.argv.slice(2);
  if (!url || json === undefined) {
    process.stdout.write(JSON.stringify({ ok: false, error: 'usage: deflate.js URL OPTIONS_JSON' }) + '\n');
    process.exit(2);
  }
  const timer = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, error: `timed out after ${TIMEOUT_MS} ms` }) + '\n');
    process.exit(3);
  }, TIMEOUT_MS);
  try {
    const result = await run(url, JSON.parse(json));
    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ ok: true, ...result }) + '\n');
    process.exit(0);
  } catch (err) {
    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n');
    process.exit(1);
  }
}

main();
