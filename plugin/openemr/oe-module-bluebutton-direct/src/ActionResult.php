<?php

/**
 * Outcome of one card form post: what to tell the clinician, which field it concerns, and what they typed
 * (kept so a refused address does not have to be typed again).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class ActionResult
{
    /** @param array<string, string|bool> $values */
    public function __construct(
        public readonly bool $ok,
        public readonly string $message,
        public readonly ?string $code = null,
        public readonly ?string $field = null,
        public readonly array $values = [],
    ) {
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return ['ok' => $this->ok, 'message' => $this->message, 'code' => $this->code,
            'field' => $this->field, 'values' => $this->values];
    }
}
