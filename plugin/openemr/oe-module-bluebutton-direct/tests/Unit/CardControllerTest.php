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

    public function testStopRevokesTheAuthorization(): void
    {
        $c = $this->controller();
        $this->http->json(200, ['authorization' => ['id' => 'a/1', 'status' => 'revoked']]);
        $result = $c->handle(['csrf_token_form' => 'good', 'action' => 'stop', 'authorization_id' => 'a/1'], 3, 'dr');
        $this->assertTrue($result->ok);
        $this->assertStringEndsWith('/api/v1/authorizations/a%2F1/revoke', $this->http->requests[0]['url']);
    }

    public function testCardPrefillsTheTrustedEmailAndListsAuthorizations(): void
    {
        $c = $this->controller();
        $this->http->json(200, ['items' => [['id' => 'a1', 'address' => 'x@d.example', 'kind' => 'always', 'status' => 'active',
            'trusted' => false, 'last_transmission' => ['state' => 'failed', 'error' => ['message' => 'refused']]]]]);
        $vars = $c->cardVariables(3, 'tok');
        $this->assertSame('jane@direct.example', $vars['prefill_address']);
        $this->assertSame('Always', $vars['authorizations'][0]['kind']);
        $this->assertSame('refused', $vars['authorizations'][0]['reason']);
        $this->assertTrue($vars['authorizations'][0]['active']);
        $this->assertNull($vars['error']);
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
