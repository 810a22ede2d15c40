<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrClientRegistry;
use OpenEMR\Modules\BlueButtonDirect\RegistrationResult;
use OpenEMR\Modules\BlueButtonDirect\SidecarException;
use OpenEMR\Modules\BlueButtonDirect\SmartClientRegistrar;
use PHPUnit\Framework\TestCase;

/**
 * The registrar's decisions on the module's ClientRegistry contract (ArrayClientRegistry). Registration in a
 * real OpenEMR 7.0.3 and 8.1 (ClientRepository, ScopeRepository, the module manager) is tested in tests/openemr.
 */
final class SmartClientRegistrarTest extends TestCase
{
    private const JWKS = ['keys' => [['kty' => 'RSA', 'alg' => 'RS384', 'kid' => 'k1', 'n' => 'AQAB-n', 'e' => 'AQAB']]];

    private ArraySettings $settings;
    private ArrayClientRegistry $registry;
    /** @var array<string, mixed>|\Throwable */
    private array|\Throwable $jwks = self::JWKS;

    protected function setUp(): void
    {
        $this->settings = new ArraySettings();
        $this->registry = new ArrayClientRegistry();
    }

    private function register(string $publicUrl = 'https://bb.example', string $sidecarUrl = 'http://bbdirect:8080'): RegistrationResult
    {
        $registrar = new SmartClientRegistrar($this->registry, $this->settings, function (): array {
            if ($this->jwks instanceof \Throwable) {
                throw $this->jwks;
            }
            return $this->jwks;
        });
        // What SmartSetup does: the settings as OpenEMR loaded them, plus the ids we stored.
        $config = GlobalConfig::fromGlobals([GlobalConfig::PUBLIC_URL => $publicUrl, GlobalConfig::SIDECAR_URL => $sidecarUrl] + $this->settings->values);
        return $registrar->register($config, 'default', 'admin@clinic.example');
    }

    public function testRegistersThreeEnabledClients(): void
    {
        $result = $this->register();
        $this->assertSame(RegistrationResult::REGISTERED, $result->status, $result->message);
        $this->assertTrue($result->ok());
        $clinicianId = $this->settings->get(GlobalConfig::CLINICIAN_CLIENT_ID);
        $patientId = $this->settings->get(GlobalConfig::PATIENT_CLIENT_ID);
        $this->assertSame(['clinician' => $clinicianId, 'patient' => $patientId, 'backend' => 'bbdirect-sidecar'], $result->clientIds);
        $this->assertSame($result->message, $this->settings->get(GlobalConfig::REGISTRATION_NOTE));

        $clinician = $this->registry->rows[$clinicianId];
        $this->assertSame('user', $clinician['client_role']);
        $this->assertSame('https://bb.example/smart/launch', $clinician['initiate_login_uri']);
        $this->assertSame(['https://bb.example/smart/callback'], $clinician['redirect_uris']);
        $this->assertSame(0, $clinician['is_confidential'], 'public client: PKCE, no secret');
        $this->assertSame(1, $clinician['is_enabled'], 'user/ scopes start disabled; enabling the module approves them');
        $this->assertTrue($clinician['skip_ehr_launch_authorization_flow']);
        $this->assertSame('default', $clinician['site_id']);
        $this->assertSame('admin@clinic.example', $clinician['contacts']);

        $patient = $this->registry->rows[$patientId];
        $this->assertSame('patient', $patient['client_role']);
        $this->assertSame(1, $patient['is_enabled']);
        $this->assertFalse($patient['skip_ehr_launch_authorization_flow'], 'patients sign in themselves');
    }

    public function testTheBackendClientIsConfidentialWithTheSidecarsKeysAndPerResourceSystemScopes(): void
    {
        $this->register();
        $backend = $this->registry->rows['bbdirect-sidecar'];
        $this->assertSame('private', $backend['application_type']);
        $this->assertSame('client_secret_post', $backend['token_endpoint_auth_method']);
        $this->assertNotEmpty($backend['client_secret']);
        $this->assertSame(1, $backend['is_confidential']);
        $this->assertSame(1, $backend['is_enabled'], 'system/ scopes start disabled: enabled here');
        $this->assertSame(self::JWKS, json_decode($backend['jwks'], true));
        $this->assertSame('client_credentials', $backend['grant_types']);
        $scopes = explode(' ', $backend['scope']);
        $this->assertSame(SmartClientRegistrar::backendScopes(), $scopes);
        $this->assertContains('system/Patient.read', $scopes);
        foreach ($scopes as $scope) {
            $this->assertMatchesRegularExpression('#^system/[A-Z][A-Za-z]+\.read$#', $scope, 'no system/*.read: OpenEMR refuses it');
        }
    }

    public function testTheBackendClientIdIsTheSetting(): void
    {
        $this->settings->values[GlobalConfig::BACKEND_CLIENT_ID] = 'my-sidecar';
        $result = $this->register();
        $this->assertSame('my-sidecar', $result->clientIds['backend']);
        $this->assertArrayHasKey('my-sidecar', $this->registry->rows);
    }

    public function testScopesTheServerDoesNotOfferAreLeftOutAndSaid(): void
    {
        $this->registry->accepted = array_values(array_diff(SmartClientRegistrar::backendScopes(), ['system/Goal.read']));
        $result = $this->register();
        $this->assertStringNotContainsString('system/Goal.read', $this->registry->rows['bbdirect-sidecar']['scope']);
        $this->assertStringContainsString('does not offer system/Goal.read', $result->message);
        $this->assertTrue($result->ok());
    }

    public function testNoSystemScopesAtAllSaysWhichSettingToTurnOn(): void
    {
        $this->registry->accepted = [];
        $result = $this->register();
        $this->assertSame(RegistrationResult::PARTIAL, $result->status);
        $this->assertStringContainsString('rest_system_scopes_api', $result->message);
        $this->assertArrayNotHasKey('bbdirect-sidecar', $this->registry->rows);
    }

    public function testScopesArePerResourceWithoutWildcards(): void
    {
        $this->register();
        $clinician = explode(' ', $this->registry->rows[$this->settings->get(GlobalConfig::CLINICIAN_CLIENT_ID)]['scope']);
        $patient = explode(' ', $this->registry->rows[$this->settings->get(GlobalConfig::PATIENT_CLIENT_ID)]['scope']);
        $this->assertSame(['launch', 'openid', 'fhirUser', 'user/Patient.read'], array_slice($clinician, 0, 4));
        $this->assertSame(['launch/patient', 'openid', 'fhirUser', 'patient/Patient.read'], array_slice($patient, 0, 4));
        $this->assertCount(3 + count(SmartClientRegistrar::RESOURCES), $clinician);
        foreach ([...$clinician, ...$patient] as $scope) {
            $this->assertStringNotContainsString('*', $scope);
        }
        foreach ($patient as $scope) {
            $this->assertDoesNotMatchRegularExpression('#^(system|user)/#', $scope, 'no user/ scope in the patient app');
        }
    }

    public function testSecondRunKeepsTheClientsAndRefreshesTheBackendKeys(): void
    {
        $first = $this->register();
        $this->jwks = ['keys' => [['kty' => 'RSA', 'n' => 'rotated', 'e' => 'AQAB']]];
        $second = $this->register();
        $this->assertSame(RegistrationResult::UNCHANGED, $second->status, $second->message);
        $this->assertSame($first->clientIds, $second->clientIds);
        $this->assertSame(3, $this->registry->inserts);
        $this->assertSame(3, $this->registry->updates, 'two apps, one backend client');
        $this->assertStringContainsString('rotated', $this->registry->rows['bbdirect-sidecar']['jwks']);
    }

    public function testANewPublicUrlMovesTheAppsLaunchAndRedirect(): void
    {
        $first = $this->register('https://old.example');
        $this->register('https://bb.example');
        $clinician = $this->registry->rows[$first->clientIds['clinician']];
        $this->assertSame('https://bb.example/smart/launch', $clinician['initiate_login_uri']);
        $this->assertSame(['https://bb.example/smart/callback'], $clinician['redirect_uris']);
        $this->assertSame(3, $this->registry->inserts);
    }

    public function testAFailedRunLeavesNoOrphanForTheRetry(): void
    {
        $this->registry->failAfterInsert = 1; // the row is written, then the call throws
        $failed = $this->register();
        $this->assertFalse($failed->ok());
        $this->assertStringContainsString('RuntimeException.', $failed->message);
        $this->assertStringNotContainsString('secret value', $failed->message, 'class name only');

        $this->registry->failAfterInsert = 0;
        $retry = $this->register();
        $this->assertTrue($retry->ok(), $retry->message);
        $names = array_column($this->registry->rows, 'client_name');
        $this->assertSame(count($names), count(array_unique($names)), 'one client per app, the first one reused');
        $this->assertCount(3, $this->registry->rows);
    }

    public function testADeletedClientIsRegisteredAgainAndADisabledOneReEnabled(): void
    {
        $first = $this->register();
        unset($this->registry->rows[$first->clientIds['patient']]);
        $this->registry->rows[$first->clientIds['clinician']]['is_enabled'] = 0;
        $this->registry->rows['bbdirect-sidecar']['is_enabled'] = 0;

        $again = $this->register();
        $this->assertSame(RegistrationResult::REGISTERED, $again->status);
        $this->assertSame($first->clientIds['clinician'], $again->clientIds['clinician']);
        $this->assertNotSame($first->clientIds['patient'], $again->clientIds['patient']);
        $this->assertSame($again->clientIds['patient'], $this->settings->get(GlobalConfig::PATIENT_CLIENT_ID));
        $this->assertSame(1, $this->registry->rows[$first->clientIds['clinician']]['is_enabled']);
        $this->assertSame(1, $this->registry->rows['bbdirect-sidecar']['is_enabled']);
    }

    public function testAnUnreachableSidecarIsSaidClearlyAndTheAppsAreStillRegistered(): void
    {
        $this->jwks = new SidecarException('sidecar_unreachable', 'The sharing service could not be reached (curl error 7).');
        $result = $this->register();
        $this->assertSame(RegistrationResult::PARTIAL, $result->status);
        $this->assertFalse($result->ok(), 'the module manager shows the message');
        $this->assertStringContainsString('http://bbdirect:8080/.well-known/jwks.json', $result->message);
        $this->assertStringContainsString('could not be reached', $result->message);
        $this->assertStringContainsString('Register the SMART apps', $result->message);
        $this->assertArrayHasKey('clinician', $result->clientIds);
        $this->assertArrayNotHasKey('bbdirect-sidecar', $this->registry->rows);
    }

    public function testAnUnreachableSidecarKeepsTheBackendClientRegisteredBefore(): void
    {
        $this->register();
        $this->jwks = new SidecarException('sidecar_unreachable', 'The sharing service could not be reached (curl error 7).');
        $result = $this->register();
        $this->assertSame(RegistrationResult::PARTIAL, $result->status);
        $this->assertSame('bbdirect-sidecar', $result->clientIds['backend']);
        $this->assertStringContainsString('kept with the keys registered before', $result->message);
        $this->assertStringNotContainsString('.).', $result->message);
    }

    public function testKeysOpenEmrCannotUseAreRefused(): void
    {
        foreach ([[], ['keys' => []], ['keys' => [['kty' => 'EC', 'crv' => 'P-384', 'x' => 'a', 'y' => 'b']]],
            ['keys' => [['kty' => 'RSA', 'n' => 'n', 'e' => 'e', 'd' => 'private!']]]] as $jwks) {
            try {
                SmartClientRegistrar::checkedJwks($jwks);
                $this->fail('accepted ' . json_encode($jwks));
            } catch (SidecarException $e) {
                $this->assertSame('bad_jwks', $e->errorCode);
            }
        }
    }

    public function testAnOpenEmrWithoutTheRepositoryIsSkippedWithAReason(): void
    {
        $this->registry->unsupported = (new OpenEmrClientRegistry('OpenEMR\\Nowhere\\ClientRepository'))->unsupportedReason();
        $result = $this->register();
        $this->assertSame(RegistrationResult::SKIPPED, $result->status);
        $this->assertStringContainsString('Admin → System → API Clients', $result->message);
        $this->assertSame([], $this->registry->rows);
    }

    public function testAnOpenEmrMissingAMethodIsNamed(): void
    {
        $this->assertStringContainsString('generateClientSecret()', (string) (new OpenEmrClientRegistry(OldClientRepository::class))->unsupportedReason());
    }

    public function testTheAppsWaitForThePublicUrlTheBackendClientDoesNot(): void
    {
        foreach (['', 'javascript:alert(1)'] as $url) {
            $result = $this->register($url);
            $this->assertSame(RegistrationResult::PARTIAL, $result->status);
            $this->assertStringContainsString('Sidecar public URL', $result->message);
        }
        $this->assertSame(['bbdirect-sidecar'], array_keys($this->registry->rows));
    }
}

/** A ClientRepository from a build without everything the module calls. */
final class OldClientRepository
{
    public function generateClientId() { return 'x'; }
    public function generateRegistrationAccessToken() { return 'x'; }
    public function generateRegistrationClientUriPath() { return 'x'; }
    public function insertNewClient($clientId, $info, $site) { return true; }
    public function getClientEntity($clientIdentifier) { return false; }
}
