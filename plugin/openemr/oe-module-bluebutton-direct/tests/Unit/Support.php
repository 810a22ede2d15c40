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
