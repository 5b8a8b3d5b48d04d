<?php
// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Securelink;

/**
 * A connection to securelinkd, the daemon that signs nginx secure_link URLs,
 * opened on first use and kept. The application never holds the signing
 * secret: it asks the daemon over its Unix socket (docs/protocol.md).
 *
 *     $client = new Securelink\Client();     // $SECURELINK_SOCKET or the default path
 *     $url  = $client->sign('/media/private/report 2024.pdf', ttl: 600);
 *     $urls = $client->signMany($paths);     // pipelined: thousands per round trip
 *
 * Paths are URL paths as they appear in a link: "%XX" escapes are decoded by
 * the daemon, raw UTF-8 is fine. Bytes the protocol cannot carry raw (space,
 * control bytes, DEL) are percent-encoded here, so "a b.pdf" is sent as
 * "a%20b.pdf" and means the same file. A literal '%', '?' or '#' in a file
 * name must be percent-encoded by the caller (rawurlencode() does it),
 * because in a URL path they are an escape, a query and a fragment.
 *
 * A connection that broke (the daemon restarted, or closed it after its
 * idle_timeout) is reopened once per call and the unanswered requests are
 * sent again: every request this class makes is idempotent. After fork()
 * (PHP-FPM, pcntl_fork) the child opens its own connection.
 */
final class Client
{
    public const DEFAULT_SOCKET = '/run/securelink/securelinkd.sock';

    /**
     * The daemon's limit: a request line is at most 8192 bytes including the
     * LF. A longer line gets "ERR line-too-long" and the daemon closes the
     * connection, which would break pipelining, so such a request is refused
     * before it is sent.
     */
    public const LINE_MAX = 8192;

    /** The cookie a grant(form: 'cookie') answer sets. */
    public const GRANT_COOKIE = 'securelink_grant';

    /**
     * How much request data is queued for the socket at a time. Answers are
     * read while requests are still being written: the daemon stops reading
     * once its bounded output buffer is full, so a client that wrote
     * everything before reading would deadlock with it.
     */
    private const CHUNK = 65536;

    /**
     * The bytes a field cannot carry raw, percent-encoded by encodeField():
     * the protocol separates fields by one space and lines by LF, and
     * forbids control bytes. (A regex: strpbrk() with this set costs
     * microseconds per path.)
     */
    private const UNSAFE_RE = '/[\x00-\x20\x7f]/';

    /** Longest answer line accepted (STATUS lists every key, still far below). */
    private const ANSWER_MAX = 1 << 20;

    public readonly string $socket;

    /** @var resource|null */
    private $stream = null;
    private int $pid = 0;

    /**
     * @param string|null $socket  the daemon's socket; default $SECURELINK_SOCKET,
     *                             else /run/securelink/securelinkd.sock
     * @param float       $timeout seconds a call may go without any progress
     *                             (connect, send or answer) before it fails
     *                             with "timeout"
     */
    public function __construct(?string $socket = null, private readonly float $timeout = 5.0)
    {
        $env = getenv('SECURELINK_SOCKET');
        $this->socket = ($socket !== null && $socket !== '') ? $socket
            : (($env !== false && $env !== '') ? $env : self::DEFAULT_SOCKET);
    }

    public function __destruct()
    {
        $this->close();
    }

    /** Closes the kept connection; the next call opens a new one. */
    public function close(): void
    {
        if ($this->stream !== null) {
            fclose($this->stream);
            $this->stream = null;
        }
    }

    /** Returns true when the daemon answers; throws Exception otherwise. */
    public function ping(): bool
    {
        $rest = $this->one("PING\n");
        if ($rest !== 'pong') {
            throw new Exception('protocol', 'unexpected answer to PING: ' . self::clip($rest));
        }
        return true;
    }

    /**
     * Returns the signed URL for $path: a URL path beginning with '/', or an
     * absolute http(s) URL whose scheme://host[:port] is kept. $ttl: lifetime
     * in seconds (default: the daemon's default_link_ttl), or $expires: a
     * unix time; $ip binds the link to a client address (needed when the
     * daemon has bind_ip = yes). A path outside the private prefixes comes
     * back as a plain, canonical URL.
     */
    public function sign(string $path, ?int $ttl = null, ?int $expires = null, ?string $ip = null): string
    {
        return $this->one(self::signLine($path, $ttl, $expires, $ip));
    }

    /**
     * Signs a directory grant, for a stream (a playlist and every file below
     * it): $dir is a target as sign() takes it, ending in '/', inside a
     * private prefix. $form 'path' returns a base URL ending in '/' under
     * which every file of the directory opens (give the player
     * $base . 'master.m3u8'); 'cookie' returns the value of a Set-Cookie
     * header ("securelink_grant=...; Path=<dir>; Expires=...; HttpOnly;
     * SameSite=Lax", "; Secure" with an https base_url) with which a browser
     * fetches the files at their plain URLs. A public directory comes back
     * as its plain URL in both forms (a cookie answer always starts with
     * GRANT_COOKIE . '='). A $dir without its trailing '/' is the daemon's
     * bad-target.
     */
    public function grant(string $dir, string $form = 'path', ?int $ttl = null, ?string $ip = null): string
    {
        if ($form !== 'path' && $form !== 'cookie') {
            throw new \InvalidArgumentException("form must be 'path' or 'cookie', not " . self::clip($form));
        }
        $line = 'SIGN ' . self::encodeField($dir) . ' grant=' . $form;
        if ($ttl !== null) {
            $line .= ' ttl=' . $ttl;
        }
        return $this->one(self::checkLine($line . self::ipOption($ip) . "\n", 'dir', $dir));
    }

    /**
     * Signs every path with one pipelined exchange; returns the URLs with
     * the keys of $paths, in their order. Every path is checked before
     * anything is sent. If the daemon refuses some, every answer is still
     * read (the connection stays in step) and the first refusal is thrown,
     * with its position in $index.
     *
     * @param array<array-key, string> $paths
     * @return array<array-key, string>
     */
    public function signMany(array $paths, ?int $ttl = null): array
    {
        if ($paths === []) {
            return [];
        }
        $list = array_values($paths);
        $suffix = $ttl === null ? "\n" : " ttl=$ttl\n";
        // The common batch, every path printable and short enough, is
        // checked and joined by calls over the whole batch, not path by
        // path: PHP spends microseconds on a path's own checks.
        $longest = 0;
        foreach ($list as $path) {
            if (!is_string($path)) {
                $longest = self::LINE_MAX;
                break;
            }
            $longest = max($longest, strlen($path));
        }
        if ($longest + strlen($suffix) + 5 <= self::LINE_MAX
            && (ctype_graph($joined = implode('', $list)) || !preg_match(self::UNSAFE_RE, $joined))) {
            $request = 'SIGN ' . implode($suffix . 'SIGN ', $list) . $suffix;
        } else {
            $lines = [];
            foreach ($list as $i => $path) {
                try {
                    $lines[] = self::signLine($path, $ttl, null, null);
                } catch (Exception $e) {
                    throw new Exception($e->errorCode, $e->getDetail(), $i);
                }
            }
            $request = implode('', $lines);
        }
        $answers = $this->exchange($request, count($list));
        foreach ($answers as $i => $a) {
            if (!is_string($a)) {
                throw new Exception($a[0], $a[1] . ' (path ' . self::clip($list[$i]) . ')', $i);
            }
        }
        return array_is_list($paths) ? $answers : array_combine(array_keys($paths), $answers);
    }

    /**
     * Asks the daemon whether $url carries a valid signature (what nginx
     * would decide, without fetching).
     */
    public function verify(string $url, ?string $ip = null): Verdict
    {
        $line = self::checkLine('VERIFY ' . self::encodeField($url) . self::ipOption($ip) . "\n", 'the url', null);
        $rest = $this->one($line);
        [$status, $detail] = array_pad(explode(' ', $rest, 2), 2, '');
        if ($status === 'valid' || $status === 'expired') {
            $fields = [];
            foreach (preg_split('/ +/', $detail, -1, PREG_SPLIT_NO_EMPTY) as $kv) {
                [$k, $v] = array_pad(explode('=', $kv, 2), 2, '');
                $fields[$k] = $v;
            }
            if (isset($fields['kid'], $fields['expires']) && ctype_digit($fields['kid'])
                && ctype_digit($fields['expires'])) {
                return new Verdict($status, (int) $fields['kid'], (int) $fields['expires']);
            }
        } elseif ($status === 'invalid') {
            return new Verdict($status, reason: $detail);
        } elseif ($status === 'public' && $detail === '') {
            return new Verdict($status);
        }
        throw new Exception('protocol', 'unexpected answer to VERIFY: ' . self::clip($rest));
    }

    /**
     * Returns the daemon's STATUS as an array (active_kid, next_rotation,
     * keys, nginx, counters, ...).
     *
     * @return array<string, mixed>
     */
    public function status(): array
    {
        $rest = $this->one("STATUS\n");
        try {
            $status = json_decode($rest, true, 64, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            $status = null;
        }
        if (!is_array($status)) {
            throw new Exception('protocol', 'STATUS answer is not a JSON object: ' . self::clip($rest));
        }
        return $status;
    }

    // request lines

    private static function encodeField(string $text): string
    {
        if (!preg_match(self::UNSAFE_RE, $text)) {
            return $text;
        }
        return preg_replace_callback(self::UNSAFE_RE, static fn (array $m): string
            => sprintf('%%%02X', ord($m[0])), $text);
    }

    private static function ipOption(?string $ip): string
    {
        if ($ip === null) {
            return '';
        }
        // Only what would break the framing is checked here; whether it is
        // an address is the daemon's call (it answers ERR bad-ip).
        if ($ip === '' || preg_match('/[^\x21-\x7e]/', $ip)) {
            throw new Exception('bad-ip', 'ip ' . json_encode($ip) . ' is not an IPv4 or IPv6 address');
        }
        return ' ip=' . $ip;
    }

    /** $what names the request, with $subject (clipped) when given. */
    private static function checkLine(string $line, string $what, ?string $subject): string
    {
        if (strlen($line) > self::LINE_MAX) {
            throw new Exception('line-too-long', sprintf(
                '%s makes a request of %d bytes, the daemon accepts at most %d',
                $subject === null ? $what : $what . ' ' . self::clip($subject),
                strlen($line),
                self::LINE_MAX,
            ));
        }
        return $line;
    }

    private static function signLine(string $path, ?int $ttl, ?int $expires, ?string $ip): string
    {
        if ($ttl !== null && $expires !== null) {
            throw new \InvalidArgumentException('give ttl or expires, not both');
        }
        $line = 'SIGN ' . self::encodeField($path);
        if ($ttl !== null) {
            $line .= ' ttl=' . $ttl;
        }
        if ($expires !== null) {
            $line .= ' expires=' . $expires;
        }
        return self::checkLine($line . self::ipOption($ip) . "\n", 'path', $path);
    }

    private static function clip(string $s): string
    {
        return json_encode(strlen($s) > 60 ? substr($s, 0, 60) . '...' : $s,
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
    }

    // the exchange

    private function one(string $line): string
    {
        [$a] = $this->exchange($line, 1);
        if (!is_string($a)) {
            throw new Exception($a[0], $a[1]);
        }
        return $a;
    }

    /**
     * Sends $request, $want lines each ending in LF, and returns one answer
     * per line, in order: the text after "OK " (a string), or [code, message]
     * for an "ERR <code> <message>". A broken connection is reopened once per
     * call and the unanswered requests are sent again: PING, SIGN, VERIFY and
     * STATUS are idempotent, so a request the daemon got before the break
     * does no harm when repeated.
     *
     * @return list<string|array{string, string}>
     */
    private function exchange(string $request, int $want): array
    {
        $answers = [];
        $retried = false;
        while (true) {
            $this->connect();
            try {
                $broken = $want === 1
                    ? $this->roundTrip($request, $answers)
                    : $this->pump($request, $want, $answers);
            } catch (\Throwable $e) {
                // Timeout, protocol error: answers may still be on their
                // way, so this connection is out of step.
                $this->close();
                throw $e;
            }
            if ($broken === null) {
                return $answers;
            }
            $this->close();
            if ($retried) {
                throw new Exception('disconnected', "connection to {$this->socket} lost again after "
                    . "reconnecting ($broken); is securelinkd restarting?");
            }
            $retried = true;
        }
    }

    private function connect(): void
    {
        if ($this->stream !== null && $this->pid === getmypid()) {
            return;
        }
        // After fork() the child must not read answers meant for the
        // parent: it drops the inherited stream (fclose() never shuts the
        // socket down, so the parent's stays up) and opens its own.
        $this->close();
        $errno = 0;
        $errstr = '';
        $s = @stream_socket_client('unix://' . $this->socket, $errno, $errstr, $this->timeout);
        if ($s === false) {
            if ($errno === 13 || $errno === 1) { // EACCES, EPERM
                $hint = "the socket is mode 0660: run the application as a member of the socket's group (securelink)";
            } else {
                $hint = 'is securelinkd running (systemctl status securelinkd.socket)? '
                    . 'Set SECURELINK_SOCKET or new Client(socket: ...) if it listens elsewhere';
            }
            if ($errstr === '') {
                $errstr = "timed out after {$this->timeout}s";
            }
            throw new Exception('unreachable', "cannot connect to {$this->socket}: $errstr ($hint)");
        }
        $sec = (int) $this->timeout;
        stream_set_timeout($s, $sec, (int) (($this->timeout - $sec) * 1e6));
        stream_set_write_buffer($s, 0);
        // PHP reads a socket 8 KiB at a time by default: a batch's answers
        // would take a system call per 8 KiB.
        stream_set_chunk_size($s, self::CHUNK);
        $this->stream = $s;
        $this->pid = getmypid();
    }

    /**
     * One request, blocking: the common case, one write and one read.
     * Returns null, or why the connection broke.
     *
     * @param list<string|array{string, string}> $answers
     */
    private function roundTrip(string $line, array &$answers): ?string
    {
        $s = $this->stream;
        $writeFailed = null;
        if (@fwrite($s, $line) !== strlen($line)) {
            // What the daemon said before hanging up (an ERR unavailable at
            // max_connections) is still read below.
            $writeFailed = error_get_last()['message'] ?? 'write failed';
        }
        $raw = fgets($s, self::ANSWER_MAX);
        if ($raw === false || !str_ends_with($raw, "\n")) {
            if (stream_get_meta_data($s)['timed_out']) {
                throw new Exception('timeout', "securelinkd at {$this->socket} did not answer within {$this->timeout}s");
            }
            if ($raw !== false && strlen($raw) >= self::ANSWER_MAX - 1) {
                throw new Exception('protocol', 'securelinkd sent more than ' . self::ANSWER_MAX
                    . ' bytes without ending the answer line');
            }
            return $writeFailed ?? 'end of file';
        }
        $answers[] = self::parseAnswer(substr($raw, 0, -1));
        return null;
    }

    /**
     * Writes the lines of $request not answered yet (those past
     * count($answers)) and reads their answers at the same time, appending
     * them to $answers. Returns null, or why the connection broke.
     *
     * @param list<string|array{string, string}> $answers
     */
    private function pump(string $request, int $want, array &$answers): ?string
    {
        $s = $this->stream;
        $start = count($answers);
        // Resent after a reconnect: from the first unanswered line on.
        $sent = 0;
        for ($k = 0; $k < $start; $k++) {
            $sent = strpos($request, "\n", $sent) + 1;
        }
        $end = strlen($request);
        $in = '';
        $writeFailed = null;
        $sec = (int) $this->timeout;
        $usec = (int) (($this->timeout - $sec) * 1e6);
        stream_set_blocking($s, false);
        try {
            while (count($answers) < $want) {
                $r = [$s];
                $w = $sent < $end && $writeFailed === null ? [$s] : [];
                $e = null;
                $n = @stream_select($r, $w, $e, $sec, $usec);
                if ($n === false) {
                    continue; // a signal interrupted the wait
                }
                if ($n === 0) {
                    throw new Exception('timeout', "securelinkd at {$this->socket} did not answer within "
                        . "{$this->timeout}s (" . count($answers) . " of $want answers)");
                }
                if ($w !== []) {
                    // As much as the socket takes (it is non-blocking); the
                    // daemon reads while answering.
                    $k = @fwrite($s, $sent === 0 ? $request : substr($request, $sent, self::CHUNK * 4));
                    if ($k === false) {
                        $writeFailed = error_get_last()['message'] ?? 'write failed';
                    } else {
                        $sent += $k;
                    }
                }
                if ($r === []) {
                    continue;
                }
                // Drain the socket and PHP's own read buffer: stream_select()
                // does not see what PHP has buffered already.
                $got = false;
                while (($data = @fread($s, self::CHUNK)) !== false && $data !== '') {
                    $in .= $data;
                    $got = true;
                }
                if (!$got) {
                    if ($data === false || feof($s)) {
                        $this->refused($answers, $start);
                        return $writeFailed ?? 'end of file';
                    }
                    continue;
                }
                $last = strrpos($in, "\n");
                if ($last === false) {
                    if (strlen($in) > self::ANSWER_MAX) {
                        throw new Exception('protocol', 'securelinkd sent more than ' . self::ANSWER_MAX
                            . ' bytes without ending the answer line');
                    }
                    continue;
                }
                $block = substr($in, 0, $last);
                $in = (string) substr($in, $last + 1);
                $lines = substr_count($block, "\n") + 1;
                if (count($answers) + $lines > $want) {
                    throw new Exception('protocol', 'securelinkd sent ' . (count($answers) + $lines)
                        . " answers to $want requests");
                }
                // The common block, all "OK <text>": split by a few calls
                // over the whole block instead of a parse per answer.
                $block = "\n" . $block;
                if (substr_count($block, "\nOK ") === $lines && !str_contains($block, "\r")) {
                    $oks = explode("\nOK ", $block);
                    unset($oks[0]);
                    array_push($answers, ...$oks);
                } else {
                    foreach (explode("\n", substr($block, 1)) as $raw) {
                        $answers[] = self::parseAnswer($raw);
                    }
                }
            }
            if ($in !== '') {
                throw new Exception('protocol', "securelinkd sent more than the $want answers");
            }
            return null;
        } finally {
            if (is_resource($s)) {
                stream_set_blocking($s, true);
            }
        }
    }

    /**
     * At the end of a connection: when its only answer was an ERR while more
     * requests were outstanding, that ERR was no answer but securelinkd
     * refusing the connection (max_connections) before reading a request.
     * Throws it as the error of the whole call, with the daemon's reason.
     *
     * @param list<string|array{string, string}> $answers
     */
    private function refused(array &$answers, int $start): void
    {
        if (count($answers) - $start === 1 && !is_string($answers[$start])) {
            [$code, $message] = array_pop($answers);
            throw new Exception($code, "securelinkd at {$this->socket} refused the connection: $message");
        }
    }

    /** @return string|array{string, string} the text after "OK ", or [code, message] */
    private static function parseAnswer(string $raw): string|array
    {
        if (str_ends_with($raw, "\r")) {
            $raw = substr($raw, 0, -1);
        }
        if (str_starts_with($raw, 'OK ') || $raw === 'OK') {
            return (string) substr($raw, 3);
        }
        if (str_starts_with($raw, 'ERR ')) {
            [$code, $message] = array_pad(explode(' ', substr($raw, 4), 2), 2, '');
            if ($code !== '') {
                return [$code, $message];
            }
        }
        throw new Exception('protocol', 'unexpected answer from securelinkd: ' . self::clip($raw));
    }
}
