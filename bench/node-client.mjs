// SPDX-License-Identifier: MIT
// The Node.js client (contrib/node) against a running securelinkd:
//   node bench/node-client.mjs SOCKET SECONDS   -> one JSON object on stdout
//
// one_by_one: Client.sign() awaited one at a time, against the bare round
// trip of the same line written in Node: a net socket, write the line, wait
// for the LF, again (Node has no blocking socket; this is its least work per
// request). Both run in interleaved slices of 100 ms; the ratio is the
// median of the slices' ratios, so the machine's drift cancels.
// batch: signMany() of 1,024 targets per call, the C library's bench shape
// (securelink-bench "library": sl_client_sign_many, 1,024 per call).
import net from 'node:net';
import { Client } from '../contrib/node/index.mjs';

const [sock, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 1.5);
const SLICE_MS = 100;
const N_TARGETS = 1024;
const target = (i) => `/media/private/docs/quarterly-report-${String(i).padStart(6, '0')}.pdf`;
const targets = Array.from({ length: N_TARGETS }, (_, i) => target(i));

function bareConnection() {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock, () => resolve(s));
    s.on('error', reject);
    s.setEncoding('utf8');
  });
}

// One request, one answer, on a bare socket.
function bareRoundTrip(s, line) {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      if (buf.endsWith('\n')) {
        s.off('data', onData);
        resolve(buf);
      }
    };
    s.on('data', onData);
    s.write(line);
  });
}

async function slice(fn) {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(SLICE_MS * 1e6);
  let now;
  do {
    await fn(n++);
  } while ((now = process.hrtime.bigint()) < end);
  return n / (Number(now - start) / 1e9);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const bare = await bareConnection();
const client = new Client({ socket: sock });
// Warm both (JIT, the daemon's first key).
for (let i = 0; i < 2000; i++) {
  await bareRoundTrip(bare, `SIGN ${target(i % N_TARGETS)}\n`);
  await client.sign(target(i % N_TARGETS));
}

const pairs = [];
const deadline = Date.now() + seconds * 2 * 1000;
while (Date.now() < deadline || pairs.length < 5) {
  const b = await slice((i) => bareRoundTrip(bare, `SIGN ${target(i % N_TARGETS)}\n`));
  const c = await slice((i) => client.sign(target(i % N_TARGETS)));
  pairs.push([b, c]);
}
bare.destroy();

let n = 0;
const start = process.hrtime.bigint();
const end = start + BigInt(Math.round(seconds * 1e9));
let now;
do {
  const urls = await client.signMany(targets);
  if (urls.length !== N_TARGETS) throw new Error('signMany answered short');
  n += N_TARGETS;
} while ((now = process.hrtime.bigint()) < end);
client.close();

console.log(JSON.stringify({
  node: process.version,
  one_by_one: {
    slices: pairs.length,
    bare_rate: median(pairs.map((p) => p[0])),
    client_rate: median(pairs.map((p) => p[1])),
    ratio: median(pairs.map((p) => p[1] / p[0])),
  },
  sign_many_1024: n / (Number(now - start) / 1e9),
}));
