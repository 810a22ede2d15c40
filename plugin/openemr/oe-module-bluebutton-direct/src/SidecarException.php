<?php

/**
 * A failed call to the sidecar, with the sidecar's stable error code (e.g. "no_certificate", "bad_address")
 * and, for form errors, the field it concerns. Messages come from the sidecar and carry no PHI.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

class SidecarException extends \RuntimeException
{
    public function __construct(
        public readonly string $errorCode,
        string $message,
        public readonly int $status = 0,
        public readonly ?string $field = null,
    ) {
        parent::__construct($message, $status);
    }

    /** True when the sidecar could not be reached or failed; false when it refused the input. */
    public function isUnavailable(): bool
    {
        return $this->status === 0 || $this->status >= 500;
    }
}
