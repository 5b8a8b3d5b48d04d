<?php
// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Securelink\Tests;

use PHPUnit\Framework\TestCase;
use Securelink\Client;
use Securelink\Exception;

/**
 * Runs against servers that tests/integration/test_php_client.py starts and
 * names in the environment (tests/integration/clientsite.py): the real
 * securelinkd and nginx for the testReal* tests, and three fakes: "echo"
 * answers "OK <request line>", "hang" never answers, "drop" closes every
 * connection at its first request. Without them a test is skipped, or
 * fails when SECURELINK_TEST_STRICT is set, as the driver sets it.
 */
final class ClientTest extends TestCase
{
    private static function need(string $name): string
    {
        $v = getenv($name);
        if ($v === false || $v === '') {
            if (getenv('SECURELINK_TEST_STRICT')) {
                self::fail("$name is not set: the driver must provide it");
            }
            self::markTestSkipped("$name is not set: run through tests/integration/test_php_client.py");
        }
        return $v;
    }

    /** One command to the driver; returns its answer after "ok". */
    private static function control(string $command): string
    {
        $s = stream_socket_client('unix://' . self::need('SECURELINK_TEST_CONTROL'), $errno, $errstr, 60);
        self::assertNotFalse($s, "control: $errstr");
        stream_set_timeout($s, 60);
        fwrite($s, "$command\n");
        $line = (string) fgets($s);
        fclose($s);
        self::assertStringStartsWith('ok', $line, "control $command");
        return trim(substr($line, 2));
    }

    /**
     * GETs url's path and query from nginx exactly as written (no
     * re-quoting); returns [status, body].
     *
     * @return array{int, string}
     */
    private static function httpGet(string $url, ?string $cookie = null): array
    {
        $s = stream_socket_client('tcp://' . self::need('SECURELINK_TEST_HTTP'), $errno, $errstr, 20);
        self::assertNotFalse($s, "connect to nginx: $errstr");
        stream_set_timeout($s, 20);
        $extra = $cookie === null ? '' : 'Cookie: ' . Client::GRANT_COOKIE . "=$cookie\r\n";
        fwrite($s, "GET $url HTTP/1.0\r\nHost: 127.0.0.1\r\n$extra\r\n");
        $response = stream_get_contents($s);
        fclose($s);
        [$head, $body] = array_pad(explode("\r\n\r\n", (string) $response, 2), 2, '');
        self::assertMatchesRegularExpression('~^HTTP/1\.\d (\d{3})~', $head, "GET $url");
        return [(int) substr($head, 9, 3), $body];
    }

    private static function real(): Client
    {
        return new Client(self::need('SECURELINK_TEST_SOCKET'), 20.0);
    }

    /** @return Exception the exception $call throws */
    private static function raises(callable $call): Exception
    {
        try {
            $got = $call();
        } catch (Exception $e) {
            return $e;
        }
        self::fail('no Securelink\Exception; got ' . var_export($got, true));
    }

    // construction

    public function testSocketFromArgumentThenEnvironmentThenDefault(): void
    {
        $saved = getenv('SECURELINK_SOCKET');
        try {
            putenv('SECURELINK_SOCKET=/tmp/env.sock');
            self::assertSame('/tmp/env.sock', (new Client())->socket);
            self::assertSame('/tmp/arg.sock', (new Client('/tmp/arg.sock'))->socket);
            putenv('SECURELINK_SOCKET');
            self::assertSame('/run/securelink/securelinkd.sock', (new Client())->socket);
        } finally {
            putenv($saved === false ? 'SECURELINK_SOCKET' : "SECURELINK_SOCKET=$saved");
        }
    }

    // the wire, seen through the echo fake

    public function testRequestsAreSentAsDocumented(): void
    {
        $c = new Client(self::need('SECURELINK_TEST_ECHO_SOCKET'));
        self::assertSame('SIGN /m/a', $c->sign('/m/a'));
        self::assertSame('SIGN /m/a ttl=60', $c->sign('/m/a', ttl: 60));
        self::assertSame('SIGN /m/b expires=1700000000 ip=10.0.0.1', $c->sign('/m/b', expires: 1700000000, ip: '10.0.0.1'));
        self::assertSame("SIGN /media/a%20b%09c%7F/é+;%41.pdf", $c->sign("/media/a b\tc\x7f/é+;%41.pdf"));
        self::assertSame(['x' => 'SIGN /m/1 ttl=5', 'y' => 'SIGN /m/2%20x ttl=5'],
            $c->signMany(['x' => '/m/1', 'y' => '/m/2 x'], ttl: 5));
        self::assertSame('1', self::control('conns echo'), 'one kept connection');
    }

    public function testBadArgumentsAreRefusedBeforeSending(): void
    {
        $c = new Client(self::need('SECURELINK_TEST_ECHO_SOCKET'));
        try {
            $c->sign('/m/a', ttl: 1, expires: 2);
            self::fail('ttl and expires together were accepted');
        } catch (\InvalidArgumentException) {
        }
        foreach (['10.0.0.1 ttl=5', '', "1.2.3.4\n", "::1\x00"] as $ip) {
            self::assertSame('bad-ip', self::raises(fn () => $c->sign('/m/a', ip: $ip))->errorCode);
        }
        self::assertSame('line-too-long', self::raises(fn () => $c->sign('/' . str_repeat('a', 8200)))->errorCode);
        // The longest line that fits: "SIGN " + path + LF == 8192 bytes.
        $long = '/' . str_repeat('a', 8192 - 6 - 1);
        self::assertSame("SIGN $long", $c->sign($long));
        $e = self::raises(fn () => $c->signMany(['/ok', '/' . str_repeat('b', 8200)]));
        self::assertSame(['line-too-long', 1], [$e->errorCode, $e->index]);
        self::assertSame('1', self::control('lines echo'), 'the refused requests are never sent');
    }

    // failures

    public function testUnreachableSocketNamesThePathAndTheFix(): void
    {
        $path = sys_get_temp_dir() . '/securelink-missing-' . getmypid() . '.sock';
        $e = self::raises(fn () => (new Client($path))->ping());
        self::assertSame('unreachable', $e->errorCode);
        self::assertStringContainsString($path, $e->getMessage());
        self::assertStringContainsString('No such file or directory', $e->getMessage());
        self::assertStringContainsString('SECURELINK_SOCKET', $e->getMessage());
    }

    public function testNeverAnsweringSocketTimesOut(): void
    {
        $c = new Client(self::need('SECURELINK_TEST_HANG_SOCKET'), 0.3);
        self::assertSame('timeout', self::raises(fn () => $c->sign('/m/a'))->errorCode);
        self::assertSame('timeout', self::raises(fn () => $c->signMany(['/m/a', '/m/b']))->errorCode);
    }

    public function testConnectionLostTwiceInOneCallIsReported(): void
    {
        $c = new Client(self::need('SECURELINK_TEST_DROP_SOCKET'));
        self::assertSame('disconnected', self::raises(fn () => $c->ping())->errorCode);
        self::assertSame('2', self::control('conns drop'), 'one reconnect, no more');
        self::assertSame('disconnected', self::raises(fn () => $c->signMany(['/a', '/b']))->errorCode);
        self::assertSame('4', self::control('conns drop'));
    }

    public function testBatchCutInTheMiddleResendsOnlyTheUnanswered(): void
    {
        // The cut fake echoes, but closes its first connection at the third
        // request: the answers to the first two are kept, and only the rest
        // is sent again, in order.
        $c = new Client(self::need('SECURELINK_TEST_CUT_SOCKET'));
        $paths = [];
        for ($i = 0; $i < 2000; $i++) {
            $paths[] = "/m/$i";
        }
        $urls = $c->signMany($paths);
        self::assertSame(array_map(fn (string $p): string => "SIGN $p", $paths), $urls);
        self::assertSame('2', self::control('conns cut'));
        self::assertSame('2001', self::control('lines cut'), '3, then the 1,998 unanswered');
    }

    public function testForkedChildOpensItsOwnConnection(): void
    {
        if (!function_exists('pcntl_fork')) {
            self::markTestSkipped('pcntl is not available');
        }
        $c = new Client(self::need('SECURELINK_TEST_ECHO_SOCKET'));
        self::assertSame('SIGN /parent', $c->sign('/parent'));
        $pid = pcntl_fork();
        if ($pid === 0) {
            $ok = $c->sign('/child') === 'SIGN /child';
            posix_kill(getmypid(), $ok ? SIGKILL : SIGSEGV); // no PHPUnit shutdown in the child
        }
        pcntl_waitpid($pid, $status);
        self::assertSame(SIGKILL, pcntl_wtermsig($status), 'the child signed over its own connection');
        self::assertSame('SIGN /parent2', $c->sign('/parent2'));
        self::assertSame('2', self::control('conns echo'));
    }

    public function testGrantRequestsAreSentAsDocumented(): void
    {
        $c = new Client(self::need('SECURELINK_TEST_ECHO_SOCKET'));
        self::assertSame('SIGN /m/p/d/ grant=path', $c->grant('/m/p/d/'));
        self::assertSame('SIGN /m/p/d%20e/ grant=cookie ttl=60 ip=10.0.0.1',
            $c->grant('/m/p/d e/', form: 'cookie', ttl: 60, ip: '10.0.0.1'));
        try {
            $c->grant('/m/p/d/', form: 'file');
            self::fail('form "file" was accepted');
        } catch (\InvalidArgumentException) {
        }
        self::assertSame('bad-ip', self::raises(fn () => $c->grant('/m/p/d/', ip: '1.2.3.4 grant=cookie'))->errorCode);
        self::assertSame('line-too-long', self::raises(fn () => $c->grant('/' . str_repeat('d', 8200) . '/'))->errorCode);
        self::assertSame('2', self::control('lines echo'), 'only the two sendable requests');
    }

    // the real securelinkd and nginx

    private const STREAM = 'private/videos/42/';
    private const STREAM_FILES = ['master.m3u8', 'f.ts', 'v1/index.m3u8', 'v1/seg0.ts'];
    private const OUTSIDE = ['private/videos/420/f.ts', 'private/videos/43/f.ts', 'private/f.ts'];

    /** @return array<string, string> the stream's bodies by file name */
    private static function addStream(): array
    {
        $bodies = [];
        foreach (self::STREAM_FILES as $f) {
            $bodies[$f] = self::control('add ' . self::STREAM . $f);
        }
        foreach (self::OUTSIDE as $rel) {
            self::control("add $rel");
        }
        return $bodies;
    }

    public function testRealGrantPathOpensFilesBelowAndNothingOutside(): void
    {
        $c = self::real();
        $bodies = self::addStream();
        $base = $c->grant('/media/' . self::STREAM, ttl: 600);
        self::assertStringEndsWith('/' . self::STREAM, $base);
        foreach (self::STREAM_FILES as $f) {
            self::assertSame([200, $bodies[$f]], self::httpGet($base . $f), $f);
        }
        $parent = substr($base, 0, -strlen('42/'));
        self::assertSame(403, self::httpGet($parent . '420/f.ts')[0]);
        self::assertSame(403, self::httpGet($parent . '43/f.ts')[0]);
        self::assertSame('/media/public/v/', $c->grant('/media/public/v/'));
    }

    public function testRealGrantCookieOpensPlainUrlsBelowAndNothingOutside(): void
    {
        $c = self::real();
        $bodies = self::addStream();
        $answer = $c->grant('/media/' . self::STREAM, form: 'cookie', ttl: 600);
        $parts = array_map('trim', explode(';', $answer));
        $first = array_shift($parts);
        self::assertStringStartsWith(Client::GRANT_COOKIE . '=', $first);
        self::assertContains('Path=/media/' . self::STREAM, $parts);
        self::assertContains('HttpOnly', $parts);
        self::assertContains('SameSite=Lax', $parts);
        $value = substr($first, strlen(Client::GRANT_COOKIE) + 1);
        foreach (self::STREAM_FILES as $f) {
            self::assertSame([200, $bodies[$f]], self::httpGet('/media/' . self::STREAM . $f, $value), $f);
            self::assertSame(403, self::httpGet('/media/' . self::STREAM . $f)[0]);
        }
        foreach (self::OUTSIDE as $rel) {
            self::assertSame(403, self::httpGet("/media/$rel", $value)[0], $rel);
        }
        self::assertSame('/media/public/v/', $c->grant('/media/public/v/', form: 'cookie'));
    }

    public function testRealGrantWithoutTrailingSlashIsTheDaemonsBadTarget(): void
    {
        $c = self::real();
        foreach (['path', 'cookie'] as $form) {
            $e = self::raises(fn () => $c->grant('/media/private/videos/42', form: $form));
            self::assertSame('bad-target', $e->errorCode, $e->getMessage());
        }
        self::assertTrue($c->ping());
    }

    public function testRealSignedLinksAreServedByNginx(): void
    {
        $c = self::real();
        // '%', '#' and '?' are not path characters: the caller encodes them;
        // space and UTF-8 go as they are (the client encodes the space).
        foreach (['a b.pdf', 'ünï €.txt', 'plus+semi;colon.txt', '100%.txt', 'hash#tag.txt', 'q?.txt'] as $name) {
            $body = self::control("add private/$name");
            $url = $c->sign('/media/private/' . strtr($name, ['%' => '%25', '#' => '%23', '?' => '%3F']), ttl: 60);
            self::assertMatchesRegularExpression('/\?token=[^&]+&expires=\d+&kid=\d+$/', $url);
            self::assertSame([200, $body], self::httpGet($url), $name);
            $v = $c->verify($url);
            self::assertSame('valid', $v->status);
            self::assertTrue($v->isValid());
            self::assertSame(403, self::httpGet(explode('?', $url)[0])[0]);
        }
    }

    public function testRealTamperedLinkIsRefusedAndPublicComesBackPlain(): void
    {
        $c = self::real();
        self::control('add private/a.txt');
        self::control('add private/b.txt');
        $bad = str_replace('/a.txt?', '/b.txt?', $c->sign('/media/private/a.txt'));
        self::assertSame(403, self::httpGet($bad)[0]);
        self::assertSame('invalid', $c->verify($bad)->status);
        $body = self::control('add public/a b.css');
        $url = $c->sign('/media/public/a b.css');
        self::assertSame('/media/public/a%20b.css', $url);
        self::assertSame([200, $body], self::httpGet($url));
        self::assertSame('public', $c->verify($url)->status);
    }

    public function testRealErrorsCarryTheDaemonsCodesAndKeepTheConnection(): void
    {
        $c = self::real();
        foreach ([
            [fn () => $c->sign('/media/private/x?y=1'), 'bad-target'],
            [fn () => $c->sign('/media/../etc/passwd'), 'bad-target'],
            [fn () => $c->sign('/media/private/x', ttl: 0), 'bad-ttl'],
            [fn () => $c->sign('/media/private/x', expires: 1000), 'bad-ttl'],
            [fn () => $c->sign('/media/private/x', ttl: 10 ** 9), 'ttl-too-long'],
            [fn () => $c->sign('/media/private/x', ip: 'not-an-ip'), 'bad-ip'],
        ] as [$call, $code]) {
            self::assertSame($code, self::raises($call)->errorCode);
        }
        $e = self::raises(fn () => $c->signMany(['/media/private/ok', '/media/private/x?y']));
        self::assertSame(['bad-target', 1], [$e->errorCode, $e->index]);
        self::assertTrue($c->ping());
        $status = $c->status();
        self::assertIsInt($status['active_kid']);
        self::assertGreaterThanOrEqual(7, $status['counters']['errors']);
    }

    public function testRealSharedVectors(): void
    {
        $v = json_decode((string) file_get_contents(self::need('SECURELINK_TEST_VECTORS')), true, 16, JSON_THROW_ON_ERROR);
        self::assertNotEmpty($v['sign']);
        self::assertNotEmpty($v['refuse']);
        $c = self::real();
        $matches = static fn (string $url, string $path): bool => $url === $path || str_starts_with($url, "$path?");
        foreach ($v['sign'] as $s) {
            $url = $c->sign($s['target']);
            self::assertTrue($matches($url, $s['path']), "sign {$s['target']}: $url, want {$s['path']}");
        }
        $urls = $c->signMany(array_column($v['sign'], 'target'));
        foreach ($v['sign'] as $i => $s) {
            self::assertTrue($matches($urls[$i], $s['path']), "signMany {$s['target']}: {$urls[$i]}, want {$s['path']}");
        }
        foreach ($v['refuse'] as $r) {
            self::assertSame($r['code'], self::raises(fn () => $c->sign($r['target']))->errorCode, $r['target']);
        }
    }

    public function testRealSignManyKeepsOrderOver10000Requests(): void
    {
        $c = self::real();
        $n = 10000;
        $bodies = [];
        for ($i = 0; $i < $n; $i += 997) {
            $bodies[$i] = self::control("add private/many/f$i.txt");
        }
        $paths = [];
        for ($i = 0; $i < $n; $i++) {
            $paths[] = "/media/private/many/f$i.txt";
        }
        $urls = $c->signMany($paths, ttl: 600);
        self::assertCount($n, $urls);
        foreach ($urls as $i => $url) {
            if (!str_starts_with($url, $paths[$i] . '?token=')) {
                self::fail("answer $i is $url, for {$paths[$i]}");
            }
        }
        foreach ($bodies as $i => $body) {
            self::assertSame([200, $body], self::httpGet($urls[$i]));
        }
    }

    public function testRealDaemonRestartIsSurvivedOnceThenReported(): void
    {
        $c = self::real();
        $body = self::control('add private/r.txt');
        self::assertTrue($c->ping());
        // The kept connection dies with the daemon; the next call reconnects.
        self::control('restart');
        $url = $c->sign('/media/private/r.txt');
        self::assertSame([200, $body], self::httpGet($url));
        self::control('restart');
        self::assertCount(2, $c->signMany(['/media/private/r.txt', '/media/private/s.txt']));
        // Gone for good: the reconnect fails, and the call says so at once.
        self::control('stop');
        self::assertSame('unreachable', self::raises(fn () => $c->sign('/media/private/r.txt'))->errorCode);
    }

    public function testRealOneConnectionRefusalCarriesTheDaemonsReason(): void
    {
        // max_connections = 1, and this connection holds the one slot.
        $held = stream_socket_client('unix://' . self::need('SECURELINK_TEST_SOCKET'));
        fwrite($held, "PING\n");
        self::assertSame("OK pong\n", fgets($held));
        // The daemon hangs up before or after the client wrote its request,
        // a race; both must give the daemon's reason, not "connection lost".
        for ($i = 0; $i < 5; $i++) {
            foreach ([
                fn (Client $c) => $c->ping(),
                fn (Client $c) => $c->sign('/media/private/a'),
                fn (Client $c) => $c->signMany(['/media/private/a', '/media/private/b']),
            ] as $call) {
                $e = self::raises(fn () => $call(self::real()));
                self::assertSame('unavailable', $e->errorCode, $e->getMessage());
                self::assertStringContainsString('too many connections', $e->getMessage());
                self::assertNull($e->index);
            }
        }
        fclose($held);
        // The daemon frees the slot when it reads the held connection's end,
        // which a new connection may overtake: it is refused until then.
        for ($i = 0; $i < 1000; $i++) {
            try {
                self::assertTrue(self::real()->ping());
                return;
            } catch (Exception $e) {
                if (!str_contains($e->getMessage(), 'too many connections')) {
                    throw $e;
                }
            }
        }
        self::fail('the slot was not freed after 1000 tries');
    }
}
