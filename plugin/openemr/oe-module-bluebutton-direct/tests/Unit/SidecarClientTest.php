<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\SidecarClient;
use OpenEMR\Modules\BlueButtonDirect\SidecarException;
use PHPUnit\Framework\TestCase;

final class SidecarClientTest extends TestCase
{
    public function testListSendsBearerAndEncodesThePatientId(): void
    {
        $http = new ScriptedTransport();
        $http->json(200, ['items' => [['id' => 'a1', 'address' => 'x@direct.example']]]);
        $client = new SidecarClient('http://sidecar:8080', 'key-123', $http);

        $items = $client->listAuthorizations('p/1?x');

        $this->assertSame([['id' => 'a1', 'address' => 'x@direct.example']], $items);
        $this->assertSame('GET', $http->requests[0]['method']);
        $this->assertSame('http://sidecar:8080/api/v1/patients/p%2F1%3Fx/authorizations', $http->requests[0]['url']);
        $this->assertSame('Bearer key-123', $http->requests[0]['headers']['Authorization']);
    }

    public function testCreateSendsTheWholeRequestAndReturnsTheAuthorization(): void
    {
        $http = new ScriptedTransport();
        $http->json(201, ['authorization' => ['id' => 'a2', 'address' => 'y@direct.example']]);
        $client = new SidecarClient('http://s', 'k', $http);

        $auth = $client->createAuthorization([
            'patient_id' => 'p1', 'address' => 'y@direct.example', 'kind' => 'always',
            'created_by' => ['type' => 'clinician', 'id' => 'admin'], 'consent_method' => 'in_person', 'attestation' => 'asked in person',
        ]);

        $this->assertSame('a2', $auth['id']);
        $sent = json_decode($http->requests[0]['body'], true);
        $this->assertSame('always', $sent['kind']);
        $this->assertSame(['type' => 'entire_record'], $sent['payload']);
        $this->assertTrue($sent['send_now']);
        $this->assertSame('application/json', $http->requests[0]['headers']['Content-Type']);
    }

    public function testRefusalCarriesCodeMessageAndField(): void
    {
        $http = new ScriptedTransport();
        $http->json(422, ['error' => ['code' => 'no_certificate', 'message' => 'No certificate for nowhere.example', 'field' => 'address']]);
        $client = new SidecarClient('http://s', 'k', $http);
        try {
            $client->createAuthorization(['patient_id' => 'p', 'address' => 'a@nowhere.example', 'kind' => 'once',
                'created_by' => ['type' => 'clinician', 'id' => 'u'], 'consent_method' => 'in_person', 'attestation' => 'asked in person']);
            $this->fail('expected a SidecarException');
        } catch (SidecarException $e) {
            $this->assertSame('no_certificate', $e->errorCode);
            $this->assertSame('address', $e->field);
            $this->assertSame(422, $e->status);
            $this->assertFalse($e->isUnavailable());
            $this->assertStringContainsString('nowhere.example', $e->getMessage());
        }
    }

    public function testServerErrorWithoutJsonIsUnavailable(): void
    {
        $http = new ScriptedTransport();
        $http->answers[] = new \OpenEMR\Modules\BlueButtonDirect\HttpResponse(502, '<html>bad gateway</html>');
        $client = new SidecarClient('http://s', 'k', $http);
        $this->expectException(SidecarException::class);
        try {
            $client->listAuthorizations('p1');
        } catch (SidecarException $e) {
            $this->assertTrue($e->isUnavailable());
            $this->assertSame('sidecar_error', $e->errorCode);
            throw $e;
        }
    }

    public function testPingUsesAShortTimeout(): void
    {
        $http = new ScriptedTransport();
        $http->answers[] = new \OpenEMR\Modules\BlueButtonDirect\HttpResponse(202, '');
        (new SidecarClient('http://s', 'k', $http))->pingChanged('p1');
        $this->assertSame('POST', $http->requests[0]['method']);
        $this->assertSame('http://s/api/v1/patients/p1/changed', $http->requests[0]['url']);
        $this->assertLessThanOrEqual(2000, $http->requests[0]['timeout']);
    }
}
