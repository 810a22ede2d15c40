<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Common\Auth\OpenIDConnect\Repositories\ClientRepository;
use OpenEMR\Modules\BlueButtonDirect\ClientRegistry;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrClientRegistry;
use OpenEMR\Modules\BlueButtonDirect\RegistrationResult;
use OpenEMR\Modules\BlueButtonDirect\SmartClientRegistrar;
use PHPUnit\Framework\TestCase;

final class SmartClientRegistrarTest extends TestCase
{
    private ArraySettings $settings;

    protected function setUp(): void
    {
        ClientRepository::$rows = [];
        ClientRepository::$inserts = 0;
        $this->settings = new ArraySettings();
    }

    private function config(string $publicUrl = 'https://bb.example'): GlobalConfig
    {
        // What SmartSetup does: the settings as OpenEMR loaded them, plus the ids we stored.
        return GlobalConfig::fromGlobals([GlobalConfig::PUBLIC_URL => $publicUrl] + $this->settings->values);
    }

    private function register(?ClientRegistry $registry = null, string $publicUrl = 'https://bb.example'): RegistrationResult
    {
        $registrar = new SmartClientRegistrar($registry ?? new OpenEmrClientRegistry(), $this->settings);
        return $registrar->register($this->config($publicUrl), 'default', 'admin@clinic.example');
    }

    public function testRegistersTheClinicianAndPatientAppsAsEnabledPublicClients(): void
    {
        $result = $this->register();
        $this->assertSame(RegistrationResult::REGISTERED, $result->status, $result->message);
        $clinicianId = $this->settings->get(GlobalConfig::CLINICIAN_CLIENT_ID);
        $patientId = $this->settings->get(GlobalConfig::PATIENT_CLIENT_ID);
        $this->assertMatchesRegularExpression('/^[A-Za-z0-9_-]{43}$/', $clinicianId, 'ClientRepository::generateClientId()');
        $this->assertNotSame($clinicianId, $patientId);
        $this->assertSame(['clinician' => $clinicianId, 'patient' => $patientId], $result->clientIds);
        $this->assertSame($result->message, $this->settings->get(GlobalConfig::REGISTRATION_NOTE));

        $clinician = ClientRepository::$rows[$clinicianId];
        $this->assertSame('user', $clinician['client_role']);
        $this->assertSame('https://bb.example/smart/launch', $clinician['initiate_login_uri']);
        $this->assertSame('https://bb.example/smart/callback', $clinician['redirect_uri']);
        $this->assertSame(0, $clinician['is_confidential'], 'public client: PKCE, no secret');
        $this->assertSame(1, $clinician['is_enabled'], 'user/ scopes start disabled; enabling the module approves them');
        $this->assertSame(1, $clinician['skip_ehr_launch_authorization_flow']);
        $this->assertSame('default', $clinician['site_id']);
        $this->assertNotEmpty($clinician['registration_token']);
        $this->assertNotEmpty($clinician['registration_uri_path']);
        $this->assertSame('admin@clinic.example', $clinician['contacts']);

        $patient = ClientRepository::$rows[$patientId];
        $this->assertSame('patient', $patient['client_role']);
        $this->assertSame(1, $patient['is_enabled']);
        $this->assertSame(0, $patient['skip_ehr_launch_authorization_flow'], 'patients sign in themselves');
    }

    public function testScopesArePerResourceWithoutWildcards(): void
    {
        $this->register();
        $clinician = explode(' ', ClientRepository::$rows[$this->settings->get(GlobalConfig::CLINICIAN_CLIENT_ID)]['scope']);
        $patient = explode(' ', ClientRepository::$rows[$this->settings->get(GlobalConfig::PATIENT_CLIENT_ID)]['scope']);
        $this->assertSame(['launch', 'openid', 'fhirUser', 'user/Patient.read'], array_slice($clinician, 0, 4));
        $this->assertSame(['launch/patient', 'openid', 'fhirUser', 'patient/Patient.read'], array_slice($patient, 0, 4));
        $this->assertCount(3 + count(SmartClientRegistrar::RESOURCES), $clinician);
        $this->assertContains('user/DocumentReference.read', $clinician);
        $this->assertContains('patient/Observation.read', $patient);
        foreach ([...$clinician, ...$patient] as $scope) {
            $this->assertStringNotContainsString('*', $scope);
        }
        foreach ($patient as $scope) {
            $this->assertDoesNotMatchRegularExpression('#^(system|user)/#', $scope, 'no user/ scope in the patient app');
        }
        $this->assertNotContains('launch/patient', $clinician);
        $this->assertNotContains('launch', $patient);
    }

    public function testSecondRunKeepsTheClients(): void
    {
        $first = $this->register();
        $second = $this->register();
        $this->assertSame(RegistrationResult::UNCHANGED, $second->status);
        $this->assertTrue($second->ok());
        $this->assertSame($first->clientIds, $second->clientIds);
        $this->assertSame(2, ClientRepository::$inserts);
        $this->assertCount(2, ClientRepository::$rows);
    }

    public function testADeletedClientIsRegisteredAgainAndADisabledOneReEnabled(): void
    {
        $first = $this->register();
        unset(ClientRepository::$rows[$first->clientIds['patient']]);
        ClientRepository::$rows[$first->clientIds['clinician']]['is_enabled'] = 0;

        $again = $this->register();
        $this->assertSame(RegistrationResult::REGISTERED, $again->status);
        $this->assertSame($first->clientIds['clinician'], $again->clientIds['clinician']);
        $this->assertNotSame($first->clientIds['patient'], $again->clientIds['patient']);
        $this->assertSame($again->clientIds['patient'], $this->settings->get(GlobalConfig::PATIENT_CLIENT_ID));
        $this->assertSame(1, ClientRepository::$rows[$first->clientIds['clinician']]['is_enabled']);
        $this->assertSame(3, ClientRepository::$inserts);
    }

    public function testAnOpenEmrWithoutTheRepositoryIsSkippedWithAReason(): void
    {
        $result = $this->register(new OpenEmrClientRegistry('OpenEMR\\Nowhere\\ClientRepository'));
        $this->assertSame(RegistrationResult::SKIPPED, $result->status);
        $this->assertFalse($result->ok());
        $this->assertStringContainsString('Admin → System → API Clients', $result->message);
        $this->assertSame(['bbdirect_smart_registration_note' => $result->message], $this->settings->values);
        $this->assertSame([], ClientRepository::$rows);
    }

    public function testAnOpenEmrMissingAMethodIsSkippedWithItsName(): void
    {
        $result = $this->register(new OpenEmrClientRegistry(OldClientRepository::class));
        $this->assertSame(RegistrationResult::SKIPPED, $result->status);
        $this->assertStringContainsString('saveIsEnabled()', $result->message);
    }

    public function testNothingIsRegisteredBeforeThePublicUrlIsKnown(): void
    {
        foreach (['', 'javascript:alert(1)'] as $url) {
            $result = $this->register(null, $url);
            $this->assertSame(RegistrationResult::SKIPPED, $result->status);
            $this->assertStringContainsString('Sidecar public URL', $result->message);
        }
        $this->assertSame([], ClientRepository::$rows);
    }

    public function testAFailingDatabaseIsReportedByClassNameOnly(): void
    {
        $failing = new class extends \stdClass implements ClientRegistry {
            public function unsupportedReason(): ?string { return null; }
            public function newClientId(): string { return 'id-1'; }
            public function newRegistrationAccessToken(): string { return 't'; }
            public function newRegistrationClientUriPath(): string { return 'p'; }
            public function insert(string $clientId, array $params, string $siteId): bool
            {
                throw new \RuntimeException("SQL error near 'secret value'");
            }
            public function exists(string $clientId): bool { return false; }
            public function isEnabled(string $clientId): bool { return false; }
            public function enable(string $clientId): void {}
        };
        $result = $this->register($failing);
        $this->assertSame(RegistrationResult::FAILED, $result->status);
        $this->assertSame('SMART clients not registered: RuntimeException.', $result->message);
        $this->assertSame('', $this->settings->get(GlobalConfig::CLINICIAN_CLIENT_ID));
    }
}

/** A ClientRepository from a build that cannot enable clients. */
final class OldClientRepository
{
    public function generateClientId() { return 'x'; }
    public function generateRegistrationAccessToken() { return 'x'; }
    public function generateRegistrationClientUriPath() { return 'x'; }
    public function insertNewClient($clientId, $info, $site) { return true; }
    public function getClientEntity($clientIdentifier) { return false; }
}
