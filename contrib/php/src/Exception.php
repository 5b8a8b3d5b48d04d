<?php
// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Securelink;

/**
 * A failed request. getErrorCode() is the daemon's ERR code ("bad-target",
 * "bad-ttl", "ttl-too-long", "bad-ip", "forbidden", "unavailable", ...;
 * "unavailable" also when securelinkd refused the connection at its
 * max_connections, with its reason) or one of the client's own:
 * "unreachable" (cannot connect), "disconnected" (connection lost twice in
 * one call), "timeout" (no progress for the client's timeout), "protocol"
 * (an answer that makes no sense), "line-too-long" (refused before sending).
 *
 * PHP's own getCode() is an int and stays 0; the daemon's code is a string.
 */
class Exception extends \RuntimeException
{
    public function __construct(
        public readonly string $errorCode,
        string $message,
        /** Position of the path that failed in signMany(), else null. */
        public readonly ?int $index = null,
    ) {
        parent::__construct($errorCode . ': ' . $message);
    }

    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /** The message without the code in front. */
    public function getDetail(): string
    {
        return substr($this->getMessage(), strlen($this->errorCode) + 2);
    }
}
