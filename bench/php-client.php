<?php
// SPDX-License-Identifier: MIT
// The PHP side of bench/run: Securelink\Client::sign() one by one against a
// bare blocking round trip written in PHP (one fwrite and one fgets per
// request on a stream socket, no framing checks), in alternating rounds on
// the same daemon, and signMany() of 1,024 targets per call (bench/report.py
// compares it with the C library's sl_client_sign_many).
//
//     php bench/php-client.php SOCKET SECONDS
//
// Prints one JSON object.

declare(strict_types=1);

require __DIR__ . '/../contrib/php/tests/bootstrap.php';

[, $socket, $seconds] = $argv + [null, null, null];
if ($socket === null || !is_numeric($seconds)) {
    fwrite(STDERR, "usage: php bench/php-client.php SOCKET SECONDS\n");
    exit(2);
}
$seconds = (float) $seconds;

$targets = [];
for ($i = 0; $i < 1024; $i++) {
    $targets[] = sprintf('/media/private/docs/quarterly-report-%06d.pdf', $i);
}

/** Calls $fn (which returns how many links it made) for $seconds; links per second. */
function rate(float $seconds, callable $fn): float
{
    $fn(); // warm-up
    $n = 0;
    $start = hrtime(true);
    $deadline = $start + (int) ($seconds * 1e9);
    do {
        $n += $fn();
    } while (($now = hrtime(true)) < $deadline);
    return $n / (($now - $start) / 1e9);
}

$s = stream_socket_client("unix://$socket", $errno, $errstr, 5);
if ($s === false) {
    fwrite(STDERR, "bench/php: cannot connect to $socket: $errstr\n");
    exit(1);
}
$i = 0;
$bare = function () use ($s, $targets, &$i): int {
    fwrite($s, 'SIGN ' . $targets[$i++ & 1023] . "\n");
    $line = fgets($s);
    if ($line === false || !str_starts_with($line, 'OK ')) {
        fwrite(STDERR, "bench/php: bare round trip: " . var_export($line, true) . "\n");
        exit(1);
    }
    return 1;
};
$client = new Securelink\Client($socket);
$one = function () use ($client, $targets, &$i): int {
    $client->sign($targets[$i++ & 1023]);
    return 1;
};
$many = fn (): int => count($client->signMany($targets));

// Alternating rounds, the client first in every other one: the load of a
// shared machine drifts; a ratio of two runs back to back does not.
$rounds = [];
for ($r = 0; $r < 8; $r++) {
    if ($r % 2 === 0) {
        $b = rate($seconds / 4, $bare);
        $o = rate($seconds / 4, $one);
    } else {
        $o = rate($seconds / 4, $one);
        $b = rate($seconds / 4, $bare);
    }
    $rounds[] = [$b, $o];
}
echo json_encode([
    'php' => PHP_VERSION,
    'rounds_bare_client' => $rounds,
    'sign_many_1024' => rate($seconds, $many),
]), "\n";
