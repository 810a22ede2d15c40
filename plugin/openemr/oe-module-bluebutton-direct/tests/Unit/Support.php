<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\HttpResponse;
use OpenEMR\Modules\BlueButtonDirect\HttpTransport;
use OpenEMR\Modules\BlueButtonDirect\PatientDirectory;
use OpenEMR\Modules\BlueButtonDirect\SidecarException;

/** A transport that answers from a queue and records every request (the sidecar's side is tested for real in the contract test). */
final class ScriptedTransport implements HttpTransport
{
    /** @var list<array{method: string, url: string, headers: array<string,string>, body: ?string, timeout: int}> */
    public array $requests = [];
    /** @var list<HttpResponse|\Throwable> */
    public array $answers = [];

    public function request(string $method, string $url, array $headers, ?string $body, int $timeoutMs): HttpResponse
    {
        $this->requests[] = ['method' => $method, 'url' => $url, 'headers' => $headers, 'body' => $body, 'timeout' => $timeoutMs];
        $answer = array_shift($this->answers) ?? new HttpResponse(200, '{}');
        if ($answer instanceof \Throwable) {
            throw $answer;
        }
        return $answer;
    }

    public function json(int $status, array $data): void
    {
        $this->answers[] = new HttpResponse($status, json_encode($data));
    }

    public function unreachable(): void
    {
        $this->answers[] = new SidecarException('sidecar_unreachable', 'The sharing service could not be reached.');
    }
}

final class ArrayPatients implements PatientDirectory
{
    /** @param array<int, array{0: string, 1: ?string}> $rows pid => [fhir id, direct address] */
    public function __construct(private array $rows)
    {
    }

    public function fhirId(int $pid): ?string
    {
        return $this->rows[$pid][0] ?? null;
    }

    public function directAddress(int $pid): ?string
    {
        return $this->rows[$pid][1] ?? null;
    }
}

/** SettingsStore on an array (the globals table in OpenEMR). */
final class ArraySettings implements \OpenEMR\Modules\BlueButtonDirect\SettingsStore
{
    /** @param array<string, string> $values */
    public function __construct(public array $values = [])
    {
    }

    public function get(string $key): string
    {
        return $this->values[$key] ?? '';
    }

    public function set(string $key, string $value): void
    {
        $this->values[$key] = $value;
    }
}

/**
 * ClientRegistry on an array: the module's own contract, with OpenEMR's rules the registrar must live with —
 * a client with user/ or system/ scopes (or any confidential client asking for them) starts disabled, and
 * only the scopes in $accepted are offered by the server. How OpenEMR's ClientRepository implements it
 * (insertNewClient's return value differs between 7.0.3 and 8.1) is exercised against real OpenEMR in tests/openemr.
 */
final class ArrayClientRegistry implements \OpenEMR\Modules\BlueButtonDirect\ClientRegistry
{
    /** @var array<string, array<string, mixed>> */
    public array $rows = [];
    public int $inserts = 0;
    public int $updates = 0;
    private int $next = 0;
    /** Throw on the n-th insert (1-based), after storing the row: a failure the caller must not retry into a duplicate. */
    public int $failAfterInsert = 0;

    /** @param list<string>|null $accepted scopes the server offers (null: every scope) */
    public function __construct(public ?array $accepted = null, public ?string $unsupported = null)
    {
    }

    public function unsupportedReason(): ?string
    {
        return $this->unsupported;
    }

    public function newClientId(): string
    {
        return 'client-' . (++$this->next);
    }

    public function newClientSecret(): string
    {
        return 'secret-' . $this->next;
    }

    public function newRegistrationAccessToken(): string
    {
        return 'rat';
    }

    public function newRegistrationClientUriPath(): string
    {
        return 'path';
    }

    public function insert(string $clientId, array $params, string $siteId): void
    {
        $this->inserts++;
        $scope = (string) $params['scope'];
        $this->rows[$clientId] = $params + ['site_id' => $siteId,
            'is_confidential' => empty($params['client_secret']) ? 0 : 1,
            'is_enabled' => preg_match('#(^| )(user|system)/#', $scope) ? 0 : 1];
        if ($this->failAfterInsert === $this->inserts) {
            throw new \RuntimeException("SQL error near 'secret value'");
        }
    }

    public function exists(string $clientId): bool
    {
        return isset($this->rows[$clientId]);
    }

    public function findByName(string $name): ?string
    {
        foreach ($this->rows as $id => $row) {
            if (($row['client_name'] ?? '') === $name) {
                return (string) $id;
            }
        }
        return null;
    }

    public function isEnabled(string $clientId): bool
    {
        return ($this->rows[$clientId]['is_enabled'] ?? 0) === 1;
    }

    public function enable(string $clientId): void
    {
        $this->rows[$clientId]['is_enabled'] = 1;
    }

    public function updateApp(string $clientId, string $redirectUri, string $launchUri, string $scope): void
    {
        $this->updates++;
        $this->rows[$clientId]['redirect_uris'] = [$redirectUri];
        $this->rows[$clientId]['initiate_login_uri'] = $launchUri;
        $this->rows[$clientId]['scope'] = $scope;
    }

    public function updateKeys(string $clientId, string $jwks, string $scope): void
    {
        $this->updates++;
        $this->rows[$clientId]['jwks'] = $jwks;
        $this->rows[$clientId]['scope'] = $scope;
    }

    public function acceptedScopes(array $scopes): array
    {
        return $this->accepted === null ? $scopes : array_values(array_intersect($scopes, $this->accepted));
    }
}
