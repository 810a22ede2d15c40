<?php

/**
 * Contract run: the module's real SidecarClient + CurlTransport against a real running sidecar.
 * Driven by tests/plugin/test_sidecar_contract.py, which checks every exchange against /openapi.json.
 * Prints one JSON object with what each call returned (or the SidecarException it raised).
 */

require __DIR__ . '/../bootstrap.php';

use OpenEMR\Modules\BlueButtonDirect\SidecarClient;
use OpenEMR\Modules\BlueButtonDirect\SidecarException;

$client = new SidecarClient(getenv('SIDECAR_URL'), getenv('SIDECAR_API_KEY'));
$patient = getenv('PATIENT_ID');
$out = [];
$record = static function (string $name, callable $call) use (&$out): mixed {
    try {
        $out[$name] = ['ok' => true, 'value' => $call()];
        return $out[$name]['value'];
    } catch (SidecarException $e) {
        $out[$name] = ['ok' => false, 'code' => $e->errorCode, 'status' => $e->status, 'field' => $e->field,
            'message' => $e->getMessage()];
        return null;
    }
};
$request = static fn(string $address, bool $always): array => [
    'patient_id' => $patient,
    'address' => $address,
    'kind' => $always ? 'always' : 'once',
    'created_by' => ['type' => 'clinician', 'id' => 'contract-test'],
    'consent_method' => 'in_person',
    'attestation' => 'Contract test: the patient asked in person.',
];

$record('list_before', fn() => $client->listAuthorizations($patient));
$created = $record('create', fn() => $client->createAuthorization($request(getenv('GOOD_ADDRESS'), true)));
$record('create_bad_syntax', fn() => $client->createAuthorization($request("bad\r\naddress", false)));
$record('create_no_certificate', fn() => $client->createAuthorization($request(getenv('NOCERT_ADDRESS'), false)));
$record('list_after', fn() => $client->listAuthorizations($patient));
if (is_array($created) && isset($created['id'])) {
    $record('get', fn() => $client->getAuthorization((string) $created['id'])); // what Stop sending checks first
    $record('transmissions', fn() => $client->transmissions((string) $created['id']));
    $record('revoke', fn() => $client->revoke((string) $created['id'], 'contract-test'));
}
$record('ping', fn() => $client->pingChanged($patient));
$record('jwks', fn() => $client->publicJwks()); // keys, or no_backend_client when fhir.auth is not smart
$wrong = new SidecarClient(getenv('SIDECAR_URL'), 'not-the-key');
$record('wrong_key', fn() => $wrong->listAuthorizations($patient));

echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
