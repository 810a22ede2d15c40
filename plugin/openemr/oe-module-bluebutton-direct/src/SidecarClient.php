<?php

/**
 * Server-to-server client of the Blue Button Direct sidecar REST API (see the sidecar's /openapi.json).
 *
 * The sidecar is the one authority on authorizations and transmissions; the module keeps no copy, so the
 * EMR card, the SMART pages and the patient portal always show the same state.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class SidecarClient
{
    /** Calls a clinician waits for (card render, Add & Send). */
    private const INTERACTIVE_TIMEOUT_MS = 8000;
    /** Change pings: fire and forget, never hold the EMR's save. */
    private const PING_TIMEOUT_MS = 1500;

    public function __construct(
        private readonly string $baseUrl,
        private readonly string $apiKey,
        private readonly HttpTransport $http = new CurlTransport(),
    ) {
    }

    public static function fromConfig(GlobalConfig $config, ?HttpTransport $http = null): self
    {
        return new self($config->sidecarUrl, $config->apiKey, $http ?? new CurlTransport());
    }

    /** @return list<array<string, mixed>> the patient's authorizations, newest first */
    public function listAuthorizations(string $patientId): array
    {
        $data = $this->call('GET', '/api/v1/patients/' . rawurlencode($patientId) . '/authorizations');
        $items = $data['items'] ?? $data['authorizations'] ?? $data;
        return is_array($items) ? array_values(array_filter($items, 'is_array')) : [];
    }

    /**
     * Create an authorization and (by default) send now.
     *
     * @param array{patient_id: string, address: string, kind: string, created_by: array{type: string, id: string},
     *              consent_method: string, attestation: string, send_now?: bool} $request
     * @return array<string, mixed> the created authorization
     * @throws SidecarException with the sidecar's code (bad_address, no_certificate, untrusted, ...) and field
     */
    public function createAuthorization(array $request): array
    {
        $request += ['payload' => ['type' => 'entire_record'], 'send_now' => true];
        $data = $this->call('POST', '/api/v1/authorizations', $request);
        return $data['authorization'] ?? $data;
    }

    /** @return array<string, mixed> one authorization (its patient_id tells whose it is) */
    public function getAuthorization(string $authorizationId): array
    {
        $data = $this->call('GET', '/api/v1/authorizations/' . rawurlencode($authorizationId));
        $authorization = $data['authorization'] ?? $data;
        return is_array($authorization) ? $authorization : [];
    }

    /** @return array<string, mixed> the revoked authorization */
    public function revoke(string $authorizationId, string $actor): array
    {
        $data = $this->call(
            'POST',
            '/api/v1/authorizations/' . rawurlencode($authorizationId) . '/revoke',
            ['actor' => ['type' => 'clinician', 'id' => $actor]],
        );
        return $data['authorization'] ?? $data;
    }

    /** @return list<array<string, mixed>> transmissions of one authorization */
    public function transmissions(string $authorizationId): array
    {
        $data = $this->call('GET', '/api/v1/authorizations/' . rawurlencode($authorizationId) . '/transmissions');
        $items = $data['items'] ?? $data['transmissions'] ?? $data;
        return is_array($items) ? array_values(array_filter($items, 'is_array')) : [];
    }

    /**
     * Tell the sidecar to look at this patient now (POST /api/v1/patients/{id}/changed). The body is a JSON
     * object (the Ping schema); an empty PHP array would encode as `[]`, which the schema refuses.
     */
    public function pingChanged(string $patientId): void
    {
        $this->call('POST', '/api/v1/patients/' . rawurlencode($patientId) . '/changed', ['reason' => 'openemr save event'], self::PING_TIMEOUT_MS);
    }

    /**
     * The sidecar's public signing keys (GET /.well-known/jwks.json, {"keys": [RSA public JWK, alg RS384]}),
     * which OpenEMR needs to check the sidecar's SMART Backend Services client assertions.
     *
     * @return array<string, mixed>
     * @throws SidecarException when the sidecar cannot be reached or answers with an error
     */
    public function publicJwks(int $timeoutMs = self::INTERACTIVE_TIMEOUT_MS): array
    {
        if ($this->baseUrl === '') {
            throw new SidecarException('sidecar_misconfigured', 'the sidecar URL is not set');
        }
        $data = $this->call('GET', '/.well-known/jwks.json', null, $timeoutMs);
        return is_array($data) && !array_is_list($data) ? $data : [];
    }

    /**
     * @param array<string, mixed>|null $json
     * @return array<mixed>
     */
    private function call(string $method, string $path, ?array $json = null, int $timeoutMs = self::INTERACTIVE_TIMEOUT_MS): array
    {
        $headers = ['Accept' => 'application/json'];
        if ($this->apiKey !== '') {
            $headers['Authorization'] = 'Bearer ' . $this->apiKey;
        }
        $body = null;
        if ($json !== null) {
            $headers['Content-Type'] = 'application/json';
            $body = json_encode($json, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        }
        $response = $this->http->request($method, $this->baseUrl . $path, $headers, $body, $timeoutMs);
        $decoded = $response->body === '' ? [] : json_decode($response->body, true);
        if ($response->status >= 200 && $response->status < 300) {
            return is_array($decoded) ? $decoded : [];
        }
        $error = is_array($decoded) && is_array($decoded['error'] ?? null) ? $decoded['error'] : [];
        throw new SidecarException(
            (string) ($error['code'] ?? 'sidecar_error'),
            (string) ($error['message'] ?? "The sharing service answered HTTP {$response->status}."),
            $response->status,
            isset($error['field']) ? (string) $error['field'] : null,
        );
    }
}
