<?php

/**
 * The one HTTP seam of the module, so tests can use a real sidecar (CurlTransport) or a recorded answer.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

interface HttpTransport
{
    /**
     * @param array<string, string> $headers
     * @throws SidecarException with status 0 when the server cannot be reached in time
     */
    public function request(string $method, string $url, array $headers, ?string $body, int $timeoutMs): HttpResponse;
}
