// SPDX-License-Identifier: MIT
// The client against fake daemons in this process (node:net servers): the
// framing, errors, the reconnect rule and timeouts, which a real daemon
// cannot be made to break on cue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

import { Client, SecurelinkError, DEFAULT_SOCKET, LINE_MAX } from '../index.mjs';

const require = createRequire(import.meta.url);

// A fake daemon: handler(line, conn) returns the answer (without LF), or
// null to close the connection without answering, or undefined to never
// answer. Every request line is kept in .lines, per connection in .conns.
async function fake(t, handler) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slnode-'));
  const sock = path.join(dir, 'fake.sock');
  const server = { lines: [], conns: [], sockets: new Set() };
  const srv = net.createServer((c) => {
    server.sockets.add(c);
    const mine = [];
    server.conns.push(mine);
    let buf = '';
    c.setEncoding('utf8');
    c.on('close', () => server.sockets.delete(c));
    c.on('error', () => {});
    c.on('data', (chunk) => {
      buf += chunk;
      let nl;
      let out = '';
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        server.lines.push(line);
        mine.push(line);
        const answer = handler(line, mine);
        if (answer === null) {
          c.end(out);
          c.destroy();
          return;
        }
        if (answer !== undefined) out += answer + '\n';
      }
      if (out) c.write(out);
    });
  });
  await new Promise((resolve) => srv.listen(sock, resolve));
  server.path = sock;
  t.after(async () => {
    for (const c of server.sockets) c.destroy();
    await new Promise((resolve) => srv.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return server;
}

function echo(line) {
  const [verb, target] = line.split(' ');
  if (verb === 'PING') return 'OK pong';
  if (verb === 'SIGN') return `OK ${target}?token=t&expires=1&kid=1`;
  return 'ERR unknown-verb no such verb';
}

function client(t, server, opts = {}) {
  const c = new Client({ socket: server.path, ...opts });
  t.after(() => c.close());
  return c;
}

test('both entry points give the same classes, and the declarations name every export', () => {
  const cjs = require('../index.cjs');
  assert.equal(cjs.Client, Client);
  assert.equal(cjs.SecurelinkError, SecurelinkError);
  assert.equal(DEFAULT_SOCKET, '/run/securelink/securelinkd.sock');
  assert.equal(LINE_MAX, 8192);
  const dts = fs.readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
  for (const name of Object.keys(cjs)) assert.match(dts, new RegExp(`export declare (class|const) ${name}\\b`), name);
  for (const m of ['ping', 'sign', 'signMany', 'verify', 'status', 'close'])
    assert.match(dts, new RegExp(`\\n  ${m}\\(`), m);
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.name, 'securelink');
  assert.deepEqual(Object.keys(pkg.dependencies || {}), []);
  const meson = fs.readFileSync(new URL('../../../meson.build', import.meta.url), 'utf8');
  assert.equal(pkg.version, /version : '([^']+)'/.exec(meson)[1], 'package.json version follows meson.build');
});

test('the socket comes from the option, else $SECURELINK_SOCKET, else the default path', (t) => {
  const saved = process.env.SECURELINK_SOCKET;
  t.after(() => {
    if (saved === undefined) delete process.env.SECURELINK_SOCKET;
    else process.env.SECURELINK_SOCKET = saved;
  });
  process.env.SECURELINK_SOCKET = '/from/env.sock';
  assert.equal(new Client({ socket: '/given.sock' }).socket, '/given.sock');
  assert.equal(new Client().socket, '/from/env.sock');
  delete process.env.SECURELINK_SOCKET;
  assert.equal(new Client({}).socket, '/run/securelink/securelinkd.sock');
});

test('sign sends one line per call, options as documented', async (t) => {
  const s = await fake(t, echo);
  const c = client(t, s);
  assert.equal(await c.sign('/media/private/a.pdf'), '/media/private/a.pdf?token=t&expires=1&kid=1');
  await c.sign('/m/a', { ttl: 60 });
  await c.sign('/m/b', { expires: 1700000000, ip: '10.0.0.1' });
  assert.deepEqual(s.lines, ['SIGN /media/private/a.pdf', 'SIGN /m/a ttl=60', 'SIGN /m/b expires=1700000000 ip=10.0.0.1']);
  assert.equal(s.conns.length, 1, 'the connection is kept');
});

test('space and control bytes are percent-encoded, UTF-8 and escapes kept', async (t) => {
  const s = await fake(t, echo);
  const c = client(t, s);
  await c.sign('/media/a b\tc\x7f\x00/é+;%41.pdf');
  assert.deepEqual(s.lines, ['SIGN /media/a%20b%09c%7F%00/é+;%41.pdf']);
});

test('bad arguments are refused before sending', async (t) => {
  const s = await fake(t, echo);
  const c = client(t, s);
  await assert.rejects(c.sign('/m/a', { ttl: 1, expires: 2 }), TypeError);
  await assert.rejects(c.sign('/m/a', { ttl: '60' }), TypeError);
  await assert.rejects(c.sign('/m/a', { ttl: 1.5 }), TypeError);
  await assert.rejects(c.sign(42), TypeError);
  await assert.rejects(c.sign('/m/\ud800'), TypeError);
  await assert.rejects(c.sign('/m/a', { ip: '1.2.3.4 ttl=5' }), { code: 'bad-ip' });
  await assert.rejects(c.sign('/m/' + 'é'.repeat(4100)), { code: 'line-too-long' });
  assert.deepEqual(s.lines, []);
});

test('an ERR answer rejects with the daemon code and keeps the connection', async (t) => {
  const s = await fake(t, (l) => (l.startsWith('SIGN /bad') ? 'ERR bad-target dot segment in path (remove it)' : echo(l)));
  const c = client(t, s);
  await assert.rejects(c.sign('/bad/./x'), (e) => {
    assert.ok(e instanceof SecurelinkError);
    assert.equal(e.code, 'bad-target');
    assert.equal(e.detail, 'dot segment in path (remove it)');
    return true;
  });
  assert.equal(await c.ping(), true);
  assert.equal(s.conns.length, 1);
});

test('signMany pipelines, keeps order, and names the first refusal by index', async (t) => {
  const s = await fake(t, (l) => (l.includes('/bad') ? 'ERR bad-target no' : echo(l)));
  const c = client(t, s);
  const paths = Array.from({ length: 2000 }, (_, i) => `/m/${i}`);
  const urls = await c.signMany(paths);
  assert.deepEqual(urls.map((u) => u.split('?')[0]), paths);
  assert.equal(s.conns.length, 1);
  await assert.rejects(c.signMany(['/m/a', '/bad/1', '/m/b', '/bad/2']), { code: 'bad-target', index: 1 });
  assert.equal(await c.ping(), true, 'every answer was read: the connection is in step');
  assert.deepEqual(await c.signMany([]), []);
});

test('calls made without waiting are pipelined on one connection and answered in order', async (t) => {
  const s = await fake(t, echo);
  const c = client(t, s);
  const got = await Promise.all(Array.from({ length: 500 }, (_, i) => c.sign(`/m/${i}`)));
  assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => `/m/${i}?token=t&expires=1&kid=1`));
  assert.equal(s.conns.length, 1);
});

test('a connection lost once is reopened and the unanswered requests are sent again', async (t) => {
  let n = 0;
  // The first connection dies after answering two of five requests.
  const s = await fake(t, (l, conn) => (s.conns.length === 1 && ++n === 3 ? null : echo(l)));
  const c = client(t, s);
  const urls = await c.signMany(['/1', '/2', '/3', '/4', '/5']);
  assert.deepEqual(urls.map((u) => u.split('?')[0]), ['/1', '/2', '/3', '/4', '/5']);
  assert.equal(s.conns.length, 2);
  assert.deepEqual(s.conns[1], ['SIGN /3', 'SIGN /4', 'SIGN /5']);
});

test('a connection lost again within the same call is reported as disconnected', async (t) => {
  const s = await fake(t, () => null);
  const c = client(t, s);
  await assert.rejects(c.sign('/a'), (e) => {
    assert.equal(e.code, 'disconnected');
    assert.match(e.detail, /lost again after reconnecting/);
    return true;
  });
  assert.equal(s.conns.length, 2, 'exactly one reconnect');
});

test('the daemon closing an idle kept connection costs nothing', async (t) => {
  const s = await fake(t, echo);
  const c = client(t, s);
  await c.ping();
  for (const sock of s.sockets) sock.destroy();
  assert.equal(await c.ping(), true);
});

test('a refusal at max_connections is reported with the daemon reason', async (t) => {
  const s = await fake(t, (l, conn) => (conn.length === 1 ? 'ERR unavailable too many connections (raise max_connections)' : null));
  // The fake answers the first line with the refusal, then closes at the second.
  const c = client(t, s);
  await assert.rejects(c.signMany(['/a', '/b', '/c']), (e) => {
    assert.equal(e.code, 'unavailable');
    assert.match(e.detail, /refused the connection: too many connections/);
    return true;
  });
});

test('a socket that never answers times out', async (t) => {
  const s = await fake(t, () => undefined);
  const c = client(t, s, { timeout: 200 });
  await assert.rejects(c.sign('/a'), { code: 'timeout' });
  // The connection was out of step and is replaced: the next call waits anew.
  await assert.rejects(c.signMany(['/a', '/b']), { code: 'timeout' });
  assert.equal(s.conns.length, 2);
});

test('an unreachable socket is reported with a hint', async () => {
  const c = new Client({ socket: path.join(os.tmpdir(), `nonexistent-${process.pid}.sock`) });
  await assert.rejects(c.ping(), (e) => {
    assert.equal(e.code, 'unreachable');
    assert.match(e.detail, /ENOENT.*SECURELINK_SOCKET/);
    return true;
  });
});

test('verify and status parse the answers; nonsense is a protocol error', async (t) => {
  const answers = {
    'VERIFY /v': 'OK valid kid=3 expires=1700000000',
    'VERIFY /e': 'OK expired kid=2 expires=1',
    'VERIFY /i': 'OK invalid token does not match',
    'VERIFY /p': 'OK public',
    'VERIFY /x': 'OK what',
    STATUS: 'OK {"active_kid":3,"keys":[]}',
    PING: 'pong',
  };
  const s = await fake(t, (l) => answers[l]);
  const c = client(t, s);
  assert.deepEqual(await c.verify('/v'), { status: 'valid', valid: true, kid: 3, expires: 1700000000, reason: null });
  assert.deepEqual(await c.verify('/e'), { status: 'expired', valid: false, kid: 2, expires: 1, reason: null });
  assert.deepEqual(await c.verify('/i'), { status: 'invalid', valid: false, kid: null, expires: null, reason: 'token does not match' });
  assert.equal((await c.verify('/p')).valid, true);
  await assert.rejects(c.verify('/x'), { code: 'protocol' });
  assert.deepEqual(await c.status(), { active_kid: 3, keys: [] });
  await assert.rejects(c.ping(), { code: 'protocol' });
});

test('an idle client does not keep the process alive', async (t) => {
  const s = await fake(t, echo);
  const { spawnSync } = await import('node:child_process');
  const script = `const {Client}=require(${JSON.stringify(new URL('../index.cjs', import.meta.url).pathname)});
    new Client({socket:${JSON.stringify(s.path)}}).ping().then(()=>console.log('pinged'));`;
  // Run asynchronously so this process's fake daemon can answer.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0);
  assert.equal(out, 'pinged\n');
  void spawnSync;
});

test('grant sends the form and options as documented, refuses what cannot be sent', async (t) => {
  const server = await fake(t, (line) => 'OK ' + line);
  const c = client(t, server);
  assert.equal(await c.grant('/m/p/d/'), 'SIGN /m/p/d/ grant=path');
  assert.equal(await c.grant('/m/p/d e/', { form: 'cookie', ttl: 60, ip: '10.0.0.1' }),
    'SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1');
  await assert.rejects(c.grant('/m/p/d/', { form: 'file' }), TypeError);
  await assert.rejects(c.grant('/m/p/d/', { ttl: '60' }), TypeError);
  await assert.rejects(c.grant('/m/p/d/', { ip: '1.2.3.4 grant=cookie' }), { code: 'bad-ip' });
  await assert.rejects(c.grant('/' + 'd'.repeat(LINE_MAX) + '/'), { code: 'line-too-long' });
  assert.deepEqual(server.lines, ['SIGN /m/p/d/ grant=path', 'SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1']);
});
