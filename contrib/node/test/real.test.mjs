// SPDX-License-Identifier: MIT
// The client against the real securelinkd and a real nginx, started by
// tests/clients/run (it sets the environment read below): the shared
// vectors, errors, pipelining, a daemon restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { Client, GRANT_COOKIE } from '../index.mjs';

const env = process.env;
const ready = env.SECURELINK_TEST_NGINX && env.SECURELINK_TEST_MEDIA && env.SECURELINK_TEST_CONTROL &&
  env.SECURELINK_TEST_VECTORS && env.SECURELINK_SOCKET;
const skip = ready ? false : 'needs the real daemon: run through tests/clients/run BUILD node --test ...';
const PRIVATE = '/media/private/';

function addFile(rel, body = `content of ${rel}\n`) {
  const full = path.join(env.SECURELINK_TEST_MEDIA, rel);
  fs.mkdirSync(path.dirname(full), { recursive: true, mode: 0o755 });
  for (let d = path.dirname(full); d.length > env.SECURELINK_TEST_MEDIA.length; d = path.dirname(d)) fs.chmodSync(d, 0o755);
  fs.writeFileSync(full, body, { mode: 0o644 });
  return body;
}

// The file a canonical path names: decoded, below the media root.
function mediaName(p) {
  assert.ok(p.startsWith('/media/'), p);
  return Buffer.from(p.slice('/media/'.length).replace(/%([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
}

// GETs url from nginx exactly as written; resolves to [status, body].
function get(url) {
  const base = new URL(env.SECURELINK_TEST_NGINX);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: url, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve([res.statusCode, body]));
    });
    req.on('error', reject);
  });
}

// Asks tests/clients/run to restart, stop or start the daemon; resolves
// once it is done (the daemon serving again, or gone).
function control(command) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(env.SECURELINK_TEST_CONTROL);
    let answer = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(command + '\n'));
    c.on('data', (d) => {
      answer += d;
      if (answer.endsWith('\n')) {
        c.end();
        if (answer === 'OK\n') resolve();
        else reject(new Error(`control ${command}: ${answer.trim()}`));
      }
    });
    c.on('error', reject);
  });
}

function checkAnswer(answer, p) {
  if (!p.startsWith(PRIVATE)) {
    assert.equal(answer, p);
    return;
  }
  const q = answer.indexOf('?');
  assert.equal(answer.slice(0, q), p, answer);
  assert.deepEqual([...new URLSearchParams(answer.slice(q + 1)).keys()].sort(), ['expires', 'kid', 'token'], answer);
}

function client(t) {
  const c = new Client({ timeout: 20000 }); // the socket from $SECURELINK_SOCKET
  t.after(() => c.close());
  return c;
}

const vectors = ready ? JSON.parse(fs.readFileSync(env.SECURELINK_TEST_VECTORS, 'utf8')) : { sign: [], refuse: [] };

test('shared vectors: each target signs to its canonical path and nginx serves it', { skip }, async (t) => {
  const c = client(t);
  const bodies = new Map();
  for (const v of vectors.sign)
    if (v.path.startsWith(PRIVATE) || v.path.startsWith('/media/public/')) bodies.set(v.path, addFile(mediaName(v.path)));
  const wrong = [];
  for (const v of vectors.sign) {
    try {
      const url = await c.sign(v.target, { ttl: 600 });
      checkAnswer(url, v.path);
      if (bodies.has(v.path)) assert.deepEqual(await get(url), [200, bodies.get(v.path)], url);
    } catch (e) {
      wrong.push(`${JSON.stringify(v.target)}: ${e.message}`);
    }
  }
  assert.deepEqual(wrong, []);
  const urls = await c.signMany(vectors.sign.map((v) => v.target), { ttl: 600 });
  vectors.sign.forEach((v, i) => checkAnswer(urls[i], v.path));
});

test('shared vectors: refusals carry the expected codes, the connection stays usable', { skip }, async (t) => {
  const c = client(t);
  const wrong = [];
  for (const v of vectors.refuse) {
    try {
      const url = await c.sign(v.target);
      wrong.push(`${JSON.stringify(v.target.slice(0, 60))}: signed as ${url.slice(0, 80)}`);
    } catch (e) {
      if (e.code !== v.code) wrong.push(`${JSON.stringify(v.target.slice(0, 60))}: ${e.code} (${e.detail}), expected ${v.code}`);
    }
  }
  assert.deepEqual(wrong, []);
  assert.equal(await c.ping(), true);
});

test('errors map to the documented codes', { skip }, async (t) => {
  const c = client(t);
  const cases = [
    [['/media/private/x', { ttl: 0 }], 'bad-ttl'],
    [['/media/private/x', { expires: 1000 }], 'bad-ttl'],
    [['/media/private/x', { ttl: 10 ** 9 }], 'ttl-too-long'],
    [['/media/private/x', { ip: 'not-an-ip' }], 'bad-ip'],
    [['/media/private/x', { ip: '192.0.2.1' }], 'bad-ip'], // bind_ip = no
    [['/media/private/x?y=1'], 'bad-target'],
  ];
  for (const [args, code] of cases) await assert.rejects(c.sign(...args), { code }, JSON.stringify(args));
  assert.equal(await c.ping(), true);
});

test('verify gives nginx verdict: signed valid, tampered invalid and 403', { skip }, async (t) => {
  const c = client(t);
  const body = addFile('private/v/a.txt');
  addFile('private/v/b.txt');
  const url = await c.sign('/media/private/v/a.txt');
  assert.deepEqual(await get(url), [200, body]);
  assert.equal((await c.verify(url)).status, 'valid');
  const bad = url.replace('/a.txt?', '/b.txt?');
  assert.equal((await get(bad))[0], 403);
  assert.equal((await c.verify(bad)).status, 'invalid');
  assert.equal((await get(url.split('?')[0]))[0], 403);
  const st = await c.status();
  assert.ok(st.keys.some((k) => k.kid === st.active_kid && k.state === 'active'));
});

test('pipelining keeps order over 10,000 requests, batched and as concurrent calls', { skip }, async (t) => {
  const c = client(t);
  const n = 10000;
  const paths = Array.from({ length: n }, (_, i) => `/media/private/many/f${i}.txt`);
  const bodies = new Map();
  for (let i = 0; i < n; i += 997) bodies.set(i, addFile(`private/many/f${i}.txt`));
  const batch = await c.signMany(paths, { ttl: 600 });
  const calls = await Promise.all(paths.map((p) => c.sign(p, { ttl: 600 })));
  for (const urls of [batch, calls]) {
    assert.deepEqual(urls.map((u) => u.split('?')[0]), paths);
    for (const [i, body] of bodies) assert.deepEqual(await get(urls[i]), [200, body]);
  }
});

// The same, synchronously: the event loop stands still meanwhile, so the
// client cannot notice the old connection's end before its next write and
// must reconnect in the middle of a call.
function controlSync(command) {
  const script = `const c = require('node:net').createConnection(process.argv[1]);
    let a = ''; c.setEncoding('utf8'); c.on('connect', () => c.write(process.argv[2] + '\\n'));
    c.on('data', (d) => { a += d; if (a.endsWith('\\n')) { process.stdout.write(a); c.end(); } });`;
  const r = spawnSync(process.execPath, ['-e', script, env.SECURELINK_TEST_CONTROL, command], { encoding: 'utf8' });
  if (r.stdout !== 'OK\n') throw new Error(`control ${command}: ${r.stdout}${r.stderr}`);
}

test('a daemon restart mid-stream is survived; a daemon gone is reported, then found again', { skip }, async (t) => {
  const c = client(t);
  const body = addFile('private/r.txt');
  const paths = Array.from({ length: 100 }, () => '/media/private/r.txt');
  for (let round = 0; round < 3; round++) {
    const before = await c.signMany(paths);
    controlSync('restart');
    const [a, b] = await Promise.all([c.sign('/media/private/r.txt'), c.signMany(paths)]);
    for (const url of [before[0], a, b[99]]) assert.deepEqual(await get(url), [200, body]);
  }
  await control('restart'); // noticed while idle: the next call just connects
  await c.ping();
  controlSync('stop');
  try {
    await assert.rejects(c.sign('/media/private/r.txt'), { code: 'unreachable' });
  } finally {
    await control('start');
  }
  assert.deepEqual(await get(await c.sign('/media/private/r.txt')), [200, body]);
});

// Directory grants: nginx's verdict on what grant() answers.
const STREAM = 'private/videos/42/';
const STREAM_FILES = ['master.m3u8', 'f.ts', 'v1/index.m3u8', 'v1/seg0.ts'];
const OUTSIDE = ['private/videos/420/f.ts', 'private/videos/43/f.ts', 'private/f.ts'];

function getWithCookie(url, cookie) {
  const base = new URL(env.SECURELINK_TEST_NGINX);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: url, agent: false,
      headers: { Cookie: `securelink_grant=${cookie}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve([res.statusCode, body]));
    });
    req.on('error', reject);
  });
}

test('grant path: every file below the directory opens, nothing outside it', { skip }, async (t) => {
  const c = client(t);
  const bodies = Object.fromEntries(STREAM_FILES.map((f) => [f, addFile(STREAM + f)]));
  for (const rel of OUTSIDE) addFile(rel);
  const base = await c.grant('/media/' + STREAM, { ttl: 600 });
  assert.ok(base.endsWith('/' + STREAM), base);
  for (const f of STREAM_FILES) assert.deepEqual(await get(base + f), [200, bodies[f]], f);
  const parent = base.slice(0, -'42/'.length);
  assert.equal((await get(parent + '420/f.ts'))[0], 403);
  assert.equal((await get(parent + '43/f.ts'))[0], 403);
  assert.equal(await c.grant('/media/public/v/'), '/media/public/v/');
});

test('grant cookie: the plain URLs below the directory open with it, nothing outside', { skip }, async (t) => {
  const c = client(t);
  const bodies = Object.fromEntries(STREAM_FILES.map((f) => [f, addFile(STREAM + f)]));
  for (const rel of OUTSIDE) addFile(rel);
  const answer = await c.grant('/media/' + STREAM, { form: 'cookie', ttl: 600 });
  const [first, ...attrs] = answer.split(';').map((s) => s.trim());
  assert.ok(first.startsWith(GRANT_COOKIE + '='), answer);
  assert.ok(attrs.includes('Path=/media/' + STREAM) && attrs.includes('HttpOnly') && attrs.includes('SameSite=Lax'), answer);
  const value = first.slice(GRANT_COOKIE.length + 1);
  for (const f of STREAM_FILES) {
    assert.deepEqual(await getWithCookie('/media/' + STREAM + f, value), [200, bodies[f]], f);
    assert.equal((await get('/media/' + STREAM + f))[0], 403);
  }
  for (const rel of OUTSIDE) assert.equal((await getWithCookie('/media/' + rel, value))[0], 403, rel);
  assert.equal(await c.grant('/media/public/v/', { form: 'cookie' }), '/media/public/v/');
});

test('grant without the trailing slash is the daemon\'s bad-target', { skip }, async (t) => {
  const c = client(t);
  for (const form of ['path', 'cookie'])
    await assert.rejects(c.grant('/media/' + STREAM.slice(0, -1), { form }), { code: 'bad-target' });
  assert.equal(await c.ping(), true);
});
