<?php

/**
 * Outcome of SmartClientRegistrar::register(), worded for the administrator who enabled the module.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class RegistrationResult
{
    public const REGISTERED = 'registered';
    public const UNCHANGED = 'unchanged';
    public const SKIPPED = 'skipped';
    /** Some clients registered, others not (e.g. the sidecar was unreachable for the backend client's keys). */
    public const PARTIAL = 'partial';
    public const FAILED = 'failed';

    /** @param array<string, string> $clientIds app ("clinician", "patient", "backend") => OpenEMR client id */
    public function __construct(
        public readonly string $status,
        public readonly string $message,
        public readonly array $clientIds = [],
    ) {
    }

    public function ok(): bool
    {
        return $this->status === self::REGISTERED || $this->status === self::UNCHANGED;
    }
}
