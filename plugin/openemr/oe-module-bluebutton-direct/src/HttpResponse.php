<?php

/** @license Apache-2.0 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class HttpResponse
{
    public function __construct(public readonly int $status, public readonly string $body)
    {
    }
}
