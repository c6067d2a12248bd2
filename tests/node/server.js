#!/usr/bin/env node
// A WebSocket server built on the npm package 'ws', driven by
// tests/test_client.py to check txratchet's client against a server that
// real deployments use.
//
// Usage: node server.js
//
// Listens on 127.0.0.1 (a free port), with permessage-deflate on for every
// message, and prints one JSON line on stdout: {"port": N}. It exits when
// its standard input ends.
//
// Behaviour:
//   /close        closes at once with 4000 "bye"
//   any other     echoes every message with its type, except:
//     "whoami"    answers with JSON: the request's url, headers, the
//                 negotiated subprotocol and extensions
//     "close-me"  closes with 4000 "bye"
// The first offered subprotocol is accepted.

'use strict';

const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: { threshold: 0 },
  handleProtocols: (protocols) => {
    for (const protocol of protocols) {
      return protocol;
    }
    return false;
  },
});

wss.on('connection', (ws, req) => {
  if (req.url === '/close') {
    ws.close(4000, 'bye');
    return;
  }
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString('utf8');
    if (text === 'whoami') {
      ws.send(
        JSON.stringify({
          url: req.url,
          headers: req.headers,
          protocol: ws.protocol,
          extensions: ws.extensions,
        })
      );
    } else if (text === 'close-me') {
      ws.close(4000, 'bye');
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n');
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
