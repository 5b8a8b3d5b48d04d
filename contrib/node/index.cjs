// SPDX-License-Identifier: MIT
'use strict';
// Client for securelinkd, the daemon that signs nginx secure_link URLs
// (docs/protocol.md). Node.js standard library only.
//
// One kept connection per Client. Every request is written at once and the
// answers come back in order, one line each, so calls made without waiting
// for each other are pipelined on the wire, and signMany() is one pipelined
// exchange. A broken connection is reopened once per call and the requests
// still unanswered are sent again: every request this client makes (PING,
// SIGN, VERIFY, STATUS) is idempotent, so repeating one the daemon got before
// the break does no harm.

const net = require('node:net');

const DEFAULT_SOCKET = '/run/securelink/securelinkd.sock';
// The cookie a grant({ form: 'cookie' }) answer sets.
const GRANT_COOKIE = 'securelink_grant';
// The daemon's limit: a request line is at most 8192 bytes including the LF.
// A longer line gets "ERR line-too-long" and the connection is closed, which
// would fail every request pipelined behind it: it is refused before sending.
const LINE_MAX = 8192;
// Longest answer line accepted (STATUS lists every key, far below this).
const ANSWER_MAX = 1 << 20;
const DEFAULT_TIMEOUT = 5000;

// Bytes a target cannot carry raw: the protocol separates fields by one
// space and lines by LF, and refuses control bytes.
const UNSAFE_RE = /[\x00-\x20\x7f]/;
const UNSAFE_GLOBAL_RE = /[\x00-\x20\x7f]/g;
// A batch made of these only is sent as it is, one byte a character. (A
// positive class: V8 scans it faster than the negated one.)
const PRINTABLE_ASCII_RE = /^[\x21-\x7e]*$/;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

class SecurelinkError extends Error {
  // code: the daemon's ERR code ("bad-target", "bad-ttl", "ttl-too-long",
  // "bad-ip", "forbidden", "unavailable", ...) or the client's own:
  // "unreachable", "disconnected", "timeout", "protocol", "line-too-long".
  // index: set by signMany() to the position of the path that failed.
  constructor(code, message, index) {
    super(`${code}: ${message}`);
    this.name = 'SecurelinkError';
    this.code = code;
    this.detail = message;
    this.index = index === undefined ? null : index;
  }
}

function escapeUnsafe(ch) {
  const c = ch.charCodeAt(0);
  return '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase();
}

// Percent-encodes what the protocol cannot carry raw; keeps everything
// else, raw UTF-8 included, as the daemon accepts it.
function encodeField(text, what) {
  if (typeof text !== 'string')
    throw new TypeError(`${what} must be a string, not ${typeof text}`);
  if (LONE_SURROGATE_RE.test(text))
    throw new TypeError(`${what} holds a lone UTF-16 surrogate, which has no UTF-8 form`);
  return UNSAFE_RE.test(text) ? text.replace(UNSAFE_GLOBAL_RE, escapeUnsafe) : text;
}

function intOption(name, value) {
  if (!Number.isSafeInteger(value))
    throw new TypeError(`${name} must be an integer number of seconds, not ${String(value)}`);
  return ` ${name}=${value}`;
}

function ipOption(ip) {
  if (ip === undefined || ip === null) return '';
  if (typeof ip !== 'string') throw new TypeError(`ip must be a string, not ${typeof ip}`);
  // Only what would break the framing is checked here; whether it is an
  // address is the daemon's call (it answers ERR bad-ip).
  if (ip === '' || !/^[\x21-\x7e]+$/.test(ip))
    throw new SecurelinkError('bad-ip', `ip ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  return ` ip=${ip}`;
}

function checkLine(line, what) {
  // A UTF-16 unit is at most 3 UTF-8 bytes: count only when it could matter.
  if (line.length * 3 > LINE_MAX) {
    const n = Buffer.byteLength(line);
    if (n > LINE_MAX)
      throw new SecurelinkError('line-too-long',
        `${what} makes a request of ${n} bytes, the daemon accepts at most ${LINE_MAX}`);
  }
  return line;
}

function signLine(path, opts) {
  let line = 'SIGN ' + encodeField(path, 'path');
  if (opts) {
    if (opts.ttl !== undefined && opts.ttl !== null) {
      if (opts.expires !== undefined && opts.expires !== null)
        throw new TypeError('give ttl or expires, not both');
      line += intOption('ttl', opts.ttl);
    } else if (opts.expires !== undefined && opts.expires !== null) {
      line += intOption('expires', opts.expires);
    }
    line += ipOption(opts.ip);
  }
  return checkLine(line + '\n', `path ${JSON.stringify(path.slice(0, 60))}...`);
}

function grantLine(dir, opts) {
  const form = opts && opts.form !== undefined && opts.form !== null ? opts.form : 'path';
  if (form !== 'path' && form !== 'cookie')
    throw new TypeError(`form must be 'path' or 'cookie', not ${JSON.stringify(form)}`);
  let line = 'SIGN ' + encodeField(dir, 'dir') + ' grant=' + form;
  if (opts) {
    if (opts.ttl !== undefined && opts.ttl !== null) line += intOption('ttl', opts.ttl);
    line += ipOption(opts.ip);
  }
  return checkLine(line + '\n', `dir ${JSON.stringify(dir.slice(0, 60))}...`);
}

function connectHint(code) {
  if (code === 'EACCES' || code === 'EPERM')
    return "the socket is mode 0660: run the application as a member of the socket's group (securelink)";
  return 'is securelinkd running (systemctl status securelinkd.socket)? ' +
    'Set SECURELINK_SOCKET or new Client({ socket }) if it listens elsewhere';
}

// What one public call waits for: an answer to each of its n lines, which
// data holds (each ending in LF; latin1: all printable ASCII, written as
// one byte a character without encoding); resolve gets them all, each the
// text after "OK " (a string) or [code, message] for an ERR.
class Call {
  constructor(data, n, latin1, resolve, reject) {
    this.data = data;
    this.n = n;
    this.latin1 = latin1;
    this.answers = new Array(n);
    this.left = n;
    this.resolve = resolve;
    this.reject = reject;
    this.retried = false;
    this.done = false;
  }

  // Lines next..n-1 of data (a resend after a reconnect).
  from(next) {
    let at = 0;
    for (let i = 0; i < next; i++) at = this.data.indexOf('\n', at) + 1;
    return this.data.slice(at);
  }
}

// A run of one call's lines on the wire, in send order: the answers to
// lines next..end-1 are owed. One object per call and connection, not per
// request: signMany() sends thousands.
class Run {
  constructor(call, next, end) {
    this.call = call;
    this.next = next;
    this.end = end;
  }
}

function parseAnswer(line) {
  if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
  if (line.startsWith('OK ')) return line.slice(3);
  if (line === 'OK') return '';
  if (line.startsWith('ERR ')) {
    const rest = line.slice(4);
    const sp = rest.indexOf(' ');
    const code = sp < 0 ? rest : rest.slice(0, sp);
    if (code) return [code, sp < 0 ? '' : rest.slice(sp + 1)];
  }
  return null;
}

class Client {
  // socket: the daemon's socket path; default $SECURELINK_SOCKET, else
  // /run/securelink/securelinkd.sock. timeout: milliseconds a call may go
  // without any progress (connect, answer) before it fails with "timeout".
  constructor(options = {}) {
    const { socket, timeout } = options;
    this.socket = socket || process.env.SECURELINK_SOCKET || DEFAULT_SOCKET;
    this.timeout = timeout === undefined ? DEFAULT_TIMEOUT : timeout;
    if (!(this.timeout > 0)) throw new TypeError('timeout must be a positive number of milliseconds');
    this._sock = null;
    this._connected = false;
    this._queue = []; // Run, in send order; those before _head are answered
    this._head = 0;
    this._buf = '';
    this._onConnAnswers = 0; // answers read on the current connection
    this._firstErr = null;
    this._timer = null;
  }

  // public calls

  async ping() {
    const text = await this._one('PING\n');
    if (text !== 'pong') throw new SecurelinkError('protocol', `unexpected answer to PING: ${JSON.stringify(text.slice(0, 80))}`);
    return true;
  }

  // Returns the signed URL for path (a URL path beginning with '/', or an
  // absolute http(s) URL whose scheme://host[:port] is kept). opts.ttl:
  // lifetime in seconds, or opts.expires: a unix time; opts.ip: bind the
  // link to a client address. A public path comes back plain and canonical.
  sign(path, opts) {
    let line;
    try {
      line = signLine(path, opts);
    } catch (e) {
      return Promise.reject(e);
    }
    return this._one(line);
  }

  // Signs a directory grant (a stream: a playlist and every file below it):
  // dir is a target as sign() takes it, ending in '/', inside a private
  // prefix. opts.form 'path' (the default) resolves to a base URL ending in
  // '/' under which every file of the directory opens (base + 'master.m3u8');
  // 'cookie' to the value of a Set-Cookie header ('securelink_grant=...;
  // Path=<dir>; Expires=...; HttpOnly; SameSite=Lax', '; Secure' with an
  // https base_url) with which a browser fetches the files at their plain
  // URLs. A public directory resolves to its plain URL in both forms (a
  // cookie answer always starts with 'securelink_grant='). opts.ttl, opts.ip
  // as for sign(). A dir without its trailing '/' is the daemon's bad-target.
  grant(dir, opts) {
    let line;
    try {
      line = grantLine(dir, opts);
    } catch (e) {
      return Promise.reject(e);
    }
    return this._one(line);
  }

  // Signs every path in one pipelined exchange; resolves to the URLs in the
  // order of paths. Every path is checked before anything is sent. If the
  // daemon refuses some, every answer is still read (the connection stays in
  // step) and the first refusal is thrown, with .index set.
  async signMany(paths, opts) {
    const ttl = opts && opts.ttl !== undefined && opts.ttl !== null ? { ttl: opts.ttl } : undefined;
    const list = Array.isArray(paths) ? paths : Array.from(paths);
    if (list.length === 0) return [];
    const suffix = (ttl ? intOption('ttl', ttl.ttl) : '') + '\n';
    // The common batch, every path a string of printable ASCII short enough
    // for a line, is checked and joined by calls over the whole batch, and
    // written without UTF-8 encoding; any other goes path by path.
    let longest = 0;
    for (const p of list) {
      if (typeof p !== 'string') {
        longest = LINE_MAX;
        break;
      }
      if (p.length > longest) longest = p.length;
    }
    let data;
    let latin1 = false;
    if (longest + suffix.length + 5 <= LINE_MAX && PRINTABLE_ASCII_RE.test(list.join(''))) {
      data = 'SIGN ' + list.join(suffix + 'SIGN ') + suffix;
      latin1 = true;
    } else {
      data = list.map((p) => signLine(p, ttl)).join('');
    }
    const answers = await this._exchange(data, list.length, latin1);
    for (let i = 0; i < answers.length; i++) {
      const a = answers[i];
      if (typeof a !== 'string')
        throw new SecurelinkError(a[0], `${a[1]} (path ${JSON.stringify(signLine(list[i], ttl).slice(5, 65))})`, i);
    }
    return answers;
  }

  // Asks the daemon whether url carries a valid signature (nginx's verdict,
  // without fetching). Resolves to { status, valid, kid, expires, reason }.
  async verify(url, opts) {
    const line = checkLine('VERIFY ' + encodeField(url, 'url') + ipOption(opts && opts.ip) + '\n', 'the url');
    const text = await this._one(line);
    const sp = text.indexOf(' ');
    const status = sp < 0 ? text : text.slice(0, sp);
    const detail = sp < 0 ? '' : text.slice(sp + 1);
    if (status === 'valid' || status === 'expired') {
      const f = Object.fromEntries(detail.split(' ').map((kv) => {
        const eq = kv.indexOf('=');
        return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
      }));
      if (/^\d+$/.test(f.kid || '') && /^\d+$/.test(f.expires || ''))
        return { status, valid: status === 'valid', kid: Number(f.kid), expires: Number(f.expires), reason: null };
    } else if (status === 'invalid') {
      return { status, valid: false, kid: null, expires: null, reason: detail };
    } else if (status === 'public' && detail === '') {
      return { status, valid: true, kid: null, expires: null, reason: null };
    }
    throw new SecurelinkError('protocol', `unexpected answer to VERIFY: ${JSON.stringify(text.slice(0, 80))}`);
  }

  // The daemon's STATUS as an object (active_kid, next_rotation, keys, nginx, counters).
  async status() {
    const text = await this._one('STATUS\n');
    try {
      return JSON.parse(text);
    } catch {
      throw new SecurelinkError('protocol', `STATUS answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
  }

  // Closes the connection; calls still waiting fail with "disconnected".
  close() {
    this._fail(new SecurelinkError('disconnected', 'the client was closed'));
    this._drop();
  }

  // the exchange

  async _one(line) {
    const [a] = await this._exchange(line, 1, false);
    if (typeof a !== 'string') throw new SecurelinkError(a[0], a[1]);
    return a;
  }

  _exchange(data, n, latin1) {
    return new Promise((resolve, reject) => {
      this._send([new Run(new Call(data, n, latin1, resolve, reject), 0, n)]);
    });
  }

  _send(runs) {
    if (!this._sock) this._open();
    let data = '';
    let latin1 = true;
    for (const run of runs) {
      this._queue.push(run);
      const call = run.call;
      data += run.next === 0 ? call.data : call.from(run.next);
      latin1 = latin1 && call.latin1;
    }
    this._sock.write(data, latin1 ? 'latin1' : 'utf8');
    this._busy();
  }

  _open() {
    const sock = net.createConnection({ path: this.socket });
    sock.setEncoding('utf8');
    this._sock = sock;
    this._connected = false;
    this._buf = '';
    this._onConnAnswers = 0;
    this._firstErr = null; // the first answer on this connection, when an ERR
    let error = null;
    sock.on('connect', () => {
      if (this._sock !== sock) return;
      this._connected = true;
      this._progress();
    });
    sock.on('data', (chunk) => {
      if (this._sock === sock) this._data(chunk);
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => {
      if (this._sock === sock) this._broken(error);
    });
  }

  _drop() {
    const sock = this._sock;
    this._sock = null;
    this._connected = false;
    if (sock) sock.destroy();
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  // Keeps the process alive and the timeout armed while answers are owed;
  // an idle kept connection holds neither.
  _busy() {
    if (this._timer) {
      this._timer.refresh();
    } else {
      this._timer = setTimeout(() => this._timedOut(), this.timeout);
    }
    this._sock.ref();
  }

  _progress() {
    if (this._head < this._queue.length) {
      if (this._timer) this._timer.refresh();
    } else {
      clearTimeout(this._timer);
      this._timer = null;
      this._queue = [];
      this._head = 0;
      if (this._sock) this._sock.unref();
    }
  }

  _timedOut() {
    this._timer = null;
    let owed = 0;
    for (let i = this._head; i < this._queue.length; i++) owed += this._queue[i].end - this._queue[i].next;
    if (owed <= 0) return;
    // Answers may still be on their way: this connection is out of step.
    this._fail(new SecurelinkError('timeout', this._connected
      ? `securelinkd at ${this.socket} did not answer within ${this.timeout} ms (${owed} answers owed)`
      : `cannot connect to ${this.socket}: timed out after ${this.timeout} ms (is securelinkd overloaded or stopped?)`));
    this._drop();
  }

  _data(chunk) {
    let buf = this._buf + chunk;
    let start = 0;
    let nl;
    while ((nl = buf.indexOf('\n', start)) >= 0) {
      // The common answer, "OK <url>", with one slice.
      const answer = buf.startsWith('OK ', start) && buf.charCodeAt(nl - 1) !== 13
        ? buf.slice(start + 3, nl) : parseAnswer(buf.slice(start, nl));
      start = nl + 1;
      if (!this._answer(answer, buf)) return;
    }
    buf = start === 0 ? buf : buf.slice(start);
    if (buf.length > ANSWER_MAX) {
      this._fail(new SecurelinkError('protocol', `securelinkd sent more than ${ANSWER_MAX} characters without ending the answer line`));
      this._drop();
      return;
    }
    this._buf = buf;
    this._progress();
  }

  // Hands one answer to its request; false when the connection was given up.
  _answer(answer, raw) {
    if (answer === null || this._head >= this._queue.length) {
      this._fail(new SecurelinkError('protocol', answer === null
        ? `unexpected answer from securelinkd: ${JSON.stringify(raw.slice(0, 80))}`
        : 'securelinkd sent an answer to no request'));
      this._drop();
      return false;
    }
    const run = this._queue[this._head];
    const index = run.next++;
    if (run.next === run.end) this._head++;
    if (this._onConnAnswers++ === 0 && typeof answer !== 'string') this._firstErr = answer;
    const call = run.call;
    if (call.done) return true;
    call.answers[index] = answer;
    if (--call.left === 0) {
      call.done = true;
      call.resolve(call.answers);
    }
    return true;
  }

  _fail(error) {
    const queue = this._queue;
    for (let i = this._head; i < queue.length; i++) {
      const call = queue[i].call;
      if (!call.done) {
        call.done = true;
        call.reject(error);
      }
    }
    this._queue = [];
    this._head = 0;
  }

  // The connection ended with answers owed.
  _broken(error) {
    const wasConnected = this._connected;
    const onConn = this._onConnAnswers;
    const firstErr = this._firstErr;
    this._drop();
    if (this._head >= this._queue.length) {
      this._queue = [];
      this._head = 0;
      return;
    }
    if (!wasConnected) {
      const why = error ? (error.code || error.message) : 'connection closed';
      this._fail(new SecurelinkError('unreachable', `cannot connect to ${this.socket}: ${why} (${connectHint(error && error.code)})`));
      return;
    }
    // When the only answer on this connection was an ERR and more were
    // owed, it was no answer but securelinkd refusing the connection
    // (max_connections) before it read a request.
    if (onConn === 1 && firstErr) {
      const [code, message] = firstErr;
      this._fail(new SecurelinkError(code, `securelinkd at ${this.socket} refused the connection: ${message}`));
      return;
    }
    const why = error ? error.message : 'end of file';
    const resend = [];
    for (let i = this._head; i < this._queue.length; i++) {
      const run = this._queue[i];
      const call = run.call;
      if (call.done) continue;
      if (call.retried === true) {
        call.done = true;
        call.reject(new SecurelinkError('disconnected',
          `connection to ${this.socket} lost again after reconnecting (${why}); is securelinkd restarting?`));
        continue;
      }
      if (call.retried === false) call.retried = 'now';
      resend.push(new Run(call, run.next, run.end));
    }
    this._queue = [];
    this._head = 0;
    for (const run of resend) run.call.retried = true;
    if (resend.length > 0) this._send(resend);
  }
}

module.exports = { Client, SecurelinkError, DEFAULT_SOCKET, LINE_MAX, GRANT_COOKIE };
