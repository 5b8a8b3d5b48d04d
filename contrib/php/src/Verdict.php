<?php
// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Securelink;

/**
 * VERIFY's answer. $status is "valid", "expired", "invalid" or "public";
 * $kid and $expires are set for valid and expired links, $reason for
 * invalid ones.
 */
final class Verdict
{
    public function __construct(
        public readonly string $status,
        public readonly ?int $kid = null,
        public readonly ?int $expires = null,
        public readonly ?string $reason = null,
    ) {
    }

    /** True when nginx would serve the link: signed and unexpired, or public. */
    public function isValid(): bool
    {
        return $this->status === 'valid' || $this->status === 'public';
    }
}
