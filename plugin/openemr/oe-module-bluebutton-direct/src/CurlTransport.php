<?php

/**
 * HttpTransport on PHP's curl extension, with hard time limits: a slow sidecar must never hold up the EMR.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class CurlTransport implements HttpTransport
{
    public function request(string $method, string $url, array $headers, ?string $body, int $timeoutMs): HttpResponse
    {
        $scheme = parse_url($url, PHP_URL_SCHEME);
        if (!in_array($scheme, ['http', 'https'], true)) {
            throw new SidecarException('sidecar_misconfigured', 'The sidecar URL must start with http:// or https://.');
        }
        $handle = curl_init($url);
        $lines = [];
        foreach ($headers as $name => $value) {
            // Header values are ours (API key, content type); strip CR/LF anyway so nothing can inject a header.
            $lines[] = $name . ': ' . str_replace(["\r", "\n"], '', $value);
        }
        curl_setopt_array($handle, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_CONNECTTIMEOUT_MS => min($timeoutMs, 2000),
            CURLOPT_TIMEOUT_MS => $timeoutMs,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
        ]);
        if ($body !== null) {
            curl_setopt($handle, CURLOPT_POSTFIELDS, $body);
        }
        $result = curl_exec($handle);
        if ($result === false) {
            $error = curl_errno($handle);
            curl_close($handle);
            throw new SidecarException('sidecar_unreachable', "The sharing service could not be reached (curl error $error).");
        }
        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
        curl_close($handle);
        return new HttpResponse($status, (string) $result);
    }
}
