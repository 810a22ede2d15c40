<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\CardController;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\SidecarClient;
use PHPUnit\Framework\TestCase;

final class CardControllerTest extends TestCase
{
    private ScriptedTransport $http;
    private bool $allowed = true;

    private function controller(): CardController
    {
        $this->http = new ScriptedTransport();
        return new CardController(
            new SidecarClient('http://s', 'k', $this->http),
            new ArrayPatients([3 => ['pat-3', 'jane@direct.example'], 4 => ['pat-4', null]]),
            new GlobalConfig('http://s', 'k'),
            fn(string $t): bool => $t === 'good',
            fn(): bool => $this->allowed,
        );
    }

    private function post(array $extra = []): array
    {
        return $extra + ['csrf_token_form' => 'good', 'action' => 'add_send', 'address' => ' bob@direct.example ',
            'always' => '1', 'consent_method' => 'clipboard', 'attestation' => '1'];
    }

    public function testAddAndSendCreatesAnAlwaysAuthorizationAsTheClinician(): void
    {
        $c = $this->controller();
        $this->http->json(201, ['authorization' => ['id' => 'a1', 'address' => 'bob@direct.example']]);
        $result = $c->handle($this->post(), 3, 'dr-smith');
        $this->assertTrue($result->ok, $result->message);
        $body = json_decode($this->http->requests[0]['body'], true);
        $this->assertSame('pat-3', $body['patient_id']);
        $this->assertSame('bob@direct.example', $body['address']);
        $this->assertSame('always', $body['kind']);
        $this->assertSame(['type' => 'clinician', 'id' => 'dr-smith'], $body['created_by']);
        $this->assertSame('clipboard', $body['consent_method']);
        $this->assertStringContainsString('dr-smith', $body['attestation']);
        $this->assertStringContainsString('Signed clipboard form', $body['attestation']);
        $this->assertTrue($body['send_now']);
    }

    public function testBadCsrfIsRefusedBeforeAnyCall(): void
    {
        $c = $this->controller();
        $result = $c->handle($this->post(['csrf_token_form' => 'forged']), 3, 'u');
        $this->assertFalse($result->ok);
        $this->assertSame('csrf', $result->code);
        $this->assertSame([], $this->http->requests);
    }

    public function testAclIsChecked(): void
    {
        $c = $this->controller();
        $this->allowed = false;
        $this->assertSame('forbidden', $c->handle($this->post(), 3, 'u')->code);
        $this->assertSame([], $this->http->requests);
    }

    public function testAttestationAndConsentMethodAreRequired(): void
    {
        $c = $this->controller();
        $this->assertSame('attestation', $c->handle($this->post(['attestation' => '']), 3, 'u')->field);
        $this->assertSame('consent_method', $c->handle($this->post(['consent_method' => 'telepathy']), 3, 'u')->field);
        $this->assertSame([], $this->http->requests);
    }

    public function testSidecarRefusalIsShownNextToTheFieldKeepingWhatWasTyped(): void
    {
        $c = $this->controller();
        $this->http->json(422, ['error' => ['code' => 'no_certificate', 'message' => 'No certificate was found for direct.example.', 'field' => 'address']]);
        $result = $c->handle($this->post(), 3, 'u');
        $this->assertFalse($result->ok);
        $this->assertSame('no_certificate', $result->code);
        $this->assertSame('address', $result->field);
        $this->assertSame('bob@direct.example', $result->values['address']);
        $this->assertTrue($result->values['always']);
    }

    public function testStopRevokesTheAuthorizationOfTheOpenChartsPatient(): void
    {
        $c = $this->controller();
        $this->http->json(200, ['authorization' => ['id' => 'a/1', 'patient_id' => 'pat-3', 'status' => 'active']]);
        $this->http->json(200, ['authorization' => ['id' => 'a/1', 'status' => 'revoked']]);
        $result = $c->handle(['csrf_token_form' => 'good', 'action' => 'stop', 'authorization_id' => 'a/1'], 3, 'dr');
        $this->assertTrue($result->ok, $result->message);
        $this->assertSame('GET', $this->http->requests[0]['method']);
        $this->assertStringEndsWith('/api/v1/authorizations/a%2F1', $this->http->requests[0]['url']);
        $this->assertStringEndsWith('/api/v1/authorizations/a%2F1/revoke', $this->http->requests[1]['url']);
    }

    public function testStopRefusesAnotherPatientsAuthorization(): void
    {
        $c = $this->controller();
        $this->http->json(200, ['authorization' => ['id' => 'a1', 'patient_id' => 'pat-4', 'status' => 'active']]);
        $result = $c->handle(['csrf_token_form' => 'good', 'action' => 'stop', 'authorization_id' => 'a1'], 3, 'dr');
        $this->assertFalse($result->ok);
        $this->assertSame('wrong_patient', $result->code);
        $this->assertStringContainsString('another patient', $result->message);
        $this->assertCount(1, $this->http->requests, 'nothing revoked');
    }

    public function testStopOfAnUnknownAuthorizationRevokesNothing(): void
    {
        $c = $this->controller();
        $this->http->json(404, ['error' => ['code' => 'not_found', 'message' => 'No such authorization.']]);
        $result = $c->handle(['csrf_token_form' => 'good', 'action' => 'stop', 'authorization_id' => 'zz'], 3, 'dr');
        $this->assertSame('not_found', $result->code);
        $this->assertCount(1, $this->http->requests);
    }

    public function testCardPrefillsTheDirectAddressAndListsAuthorizationsAsTheSidecarSerializesThem(): void
    {
        $c = $this->controller();
        // fhir_bridge/api/serialize.py: latest_transmission, recipient_trusted, status active|revoked.
        $this->http->json(200, ['authorizations' => [
            ['id' => 'a1', 'address' => 'x@d.example', 'kind' => 'always', 'status' => 'active', 'recipient_trusted' => true,
                'latest_transmission' => ['state' => 'dispatched', 'reason' => null, 'sent_at' => '2026-12-07T10:00:00Z',
                    'dispatched_at' => '2026-12-07T10:00:05Z']],
            ['id' => 'a2', 'address' => 'y@d.example', 'kind' => 'once', 'status' => 'revoked', 'recipient_trusted' => false,
                'revoked_at' => '2026-12-07T11:00:00Z',
                'latest_transmission' => ['state' => 'failed', 'reason' => ['code' => 'smtp', 'message' => 'refused', 'detail' => null]]],
            ['id' => 'a3', 'address' => 'z@d.example', 'kind' => 'once', 'status' => 'active', 'recipient_trusted' => null,
                'latest_transmission' => null],
        ]]);
        $vars = $c->cardVariables(3, 'tok');
        $this->assertSame('jane@direct.example', $vars['prefill_address']);
        [$sent, $failed, $new] = $vars['authorizations'];
        $this->assertSame(['Always', true, 'dispatched', 'Delivered', '2026-12-07T10:00:05Z', '', false],
            [$sent['kind'], $sent['active'], $sent['state'], $sent['state_label'], $sent['when'], $sent['reason'], $sent['untrusted']]);
        $this->assertSame(['Once', false, 'failed', 'refused', true],
            [$failed['kind'], $failed['active'], $failed['state'], $failed['reason'], $failed['untrusted']]);
        $this->assertSame(['', false], [$new['state'], $new['untrusted']], 'trust not checked: no badge');
        $this->assertNull($vars['error']);
    }

    public function testASidecarOutageOnAddAndSendIsNotBlamedOnTheAddress(): void
    {
        $c = $this->controller();
        $this->http->unreachable();
        $result = $c->handle($this->post(), 3, 'u');
        $this->assertFalse($result->ok);
        $this->assertNull($result->field);
        $this->assertStringContainsString('could not be reached', $result->message);
    }

    public function testCardShowsAnErrorWhenTheSidecarIsDown(): void
    {
        $c = $this->controller();
        $this->http->unreachable();
        $vars = $c->cardVariables(4, 'tok');
        $this->assertSame('', $vars['prefill_address']);
        $this->assertStringContainsString('could not be reached', $vars['error']);
    }
}
