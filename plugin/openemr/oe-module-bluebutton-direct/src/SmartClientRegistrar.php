<?php

/**
 * Registers the sidecar's SMART clients as OpenEMR OAuth clients, so nobody has to type them in
 * Admin → System → API Clients:
 *
 *  - the clinician app (EHR launch from the chart): `launch openid fhirUser user/<R>.read`, role "user";
 *  - the patient app (standalone launch from the portal card): `launch/patient openid fhirUser patient/<R>.read`,
 *    role "patient";
 *  - the sidecar's backend client (SMART Backend Services: the sidecar reads OpenEMR's FHIR API with
 *    `system/<R>.read`): confidential (a generated secret, `client_secret_post`, the only methods OpenEMR's
 *    registration takes) with the sidecar's public JWKS, fetched from `{sidecar URL}/.well-known/jwks.json`;
 *    its client id is the setting bbdirect_backend_client_id, so the sidecar configuration names the same id.
 *
 * One scope per resource: OpenEMR refuses wildcards (`patient/*.read`, `system/*.read`), and the scopes
 * registered cap what a token can get (ScopeRepository::finalizeScopes), so they must be exactly what the
 * sidecar asks for (fhir_bridge/web/config.py CCD_RESOURCES; tests/plugin checks both lists are the same).
 * System scopes this OpenEMR does not offer are left out (ClientRegistry::acceptedScopes).
 *
 * Idempotent: a stored client id that still exists is kept (re-enabled if an admin disabled it), a client left
 * by an earlier attempt is found by its name and reused; every run refreshes the apps' launch and redirect URIs
 * (the public URL may have changed) and the backend client's keys. New clients with user/ or system/ scopes start disabled in OpenEMR: enabling the module (or pressing
 * "Register the SMART apps") is the administrator's approval, so they are enabled here.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class SmartClientRegistrar
{
    /** US Core resources the CCD is built from, each its own read scope (SMART App Launch §Scopes, v1 style). */
    public const RESOURCES = ['Patient', 'AllergyIntolerance', 'Condition', 'MedicationRequest', 'Medication',
        'Observation', 'Procedure', 'Immunization', 'Encounter', 'DiagnosticReport', 'CarePlan', 'CareTeam', 'Goal',
        'Device', 'DocumentReference', 'Practitioner', 'Organization', 'Location'];

    public const APPS = [
        'clinician' => ['key' => GlobalConfig::CLINICIAN_CLIENT_ID, 'role' => 'user', 'context' => 'launch',
            'level' => 'user', 'name' => 'Blue Button Direct (clinician pages)'],
        'patient' => ['key' => GlobalConfig::PATIENT_CLIENT_ID, 'role' => 'patient', 'context' => 'launch/patient',
            'level' => 'patient', 'name' => 'Blue Button Direct (patient pages)'],
    ];
    public const BACKEND_NAME = 'Blue Button Direct (sidecar backend service)';

    /** @var callable(): array<string, mixed> */
    private $jwks;

    /** @var array<string, string> client ids found while ensuring the backend client, even on failure */
    private array $ids = [];

    /**
     * @param (callable(): array<string, mixed>)|null $jwks the sidecar's public JWKS ({"keys": [...]}); throws
     *        when the sidecar cannot be reached. Null: the backend client is not registered.
     */
    public function __construct(
        private readonly ClientRegistry $registry,
        private readonly SettingsStore $settings,
        ?callable $jwks = null,
    ) {
        $this->jwks = $jwks;
    }

    /** The scope string registered for one app ("clinician" or "patient"). */
    public static function scopes(string $app): string
    {
        $spec = self::APPS[$app];
        $scopes = [$spec['context'], 'openid', 'fhirUser'];
        foreach (self::RESOURCES as $resource) {
            $scopes[] = $spec['level'] . '/' . $resource . '.read';
        }
        return implode(' ', $scopes);
    }

    /** @return list<string> the backend client's scopes before checking them against OpenEMR */
    public static function backendScopes(): array
    {
        return array_map(static fn(string $r): string => 'system/' . $r . '.read', self::RESOURCES);
    }

    /**
     * @param string $siteId OpenEMR site ("default")
     * @param string $contact contact stored with the clients (RFC 7591 `contacts`)
     */
    public function register(GlobalConfig $config, string $siteId, string $contact = ''): RegistrationResult
    {
        $result = $this->attempt($config, $siteId, $contact);
        $this->settings->set(GlobalConfig::REGISTRATION_NOTE, $result->message);
        return $result;
    }

    private function attempt(GlobalConfig $config, string $siteId, string $contact): RegistrationResult
    {
        $reason = $this->registry->unsupportedReason();
        if ($reason !== null) {
            return new RegistrationResult(RegistrationResult::SKIPPED, 'SMART clients not registered: ' . $reason);
        }
        $ids = [];
        $created = [];
        $notes = [];
        $failed = false;
        if ($config->sidecarLaunchUri() === '') {
            $notes[] = 'Clinician and patient apps not registered yet: set "Sidecar public URL (browser)" in the Blue Button Direct settings, then press "Register the SMART apps".';
            $failed = true;
        } else {
            try {
                foreach (self::APPS as $app => $spec) {
                    [$ids[$app], $new] = $this->ensureApp($app, $config, $siteId, $contact);
                    if ($new) {
                        $created[] = $app . ' app';
                    }
                }
            } catch (\Throwable $e) {
                // The admin sees the exception class only: messages from the database layer may quote values.
                $notes[] = 'Clinician and patient apps not registered: ' . get_class($e) . '.';
                $failed = true;
            }
        }
        try {
            $this->ids = [];
            [$backendId, $new, $note] = $this->ensureBackend($config, $siteId, $contact);
            $ids += $this->ids;
            if ($backendId !== null) {
                $ids['backend'] = $backendId;
                if ($new) {
                    $created[] = 'sidecar backend client';
                }
            } else {
                $failed = true;
            }
            if ($note !== '') {
                $notes[] = $note;
            }
        } catch (\Throwable $e) {
            $notes[] = 'Sidecar backend client not registered: ' . get_class($e) . '.';
            $failed = true;
        }
        $summary = $created === []
            ? ($ids === [] ? '' : 'SMART clients already registered (' . implode(', ', array_keys($ids)) . ').')
            : 'SMART clients registered: ' . implode(', ', $created) . '.';
        $message = trim($summary . ' ' . implode(' ', $notes));
        if ($failed) {
            return new RegistrationResult($ids === [] ? RegistrationResult::FAILED : RegistrationResult::PARTIAL, $message, $ids);
        }
        return new RegistrationResult($created === [] ? RegistrationResult::UNCHANGED : RegistrationResult::REGISTERED, $message, $ids);
    }

    /** @return array{0: string, 1: bool} client id, whether it was created now */
    private function ensureApp(string $app, GlobalConfig $config, string $siteId, string $contact): array
    {
        $spec = self::APPS[$app];
        $id = $this->settings->get($spec['key']);
        $new = false;
        if ($id === '' || !$this->registry->exists($id)) {
            // A client of ours left by an earlier attempt (e.g. one whose insert was taken for a failure) is
            // reused, never duplicated.
            $id = $this->registry->findByName($spec['name']) ?? '';
        }
        if ($id === '') {
            $id = $this->registry->newClientId();
            $this->registry->insert($id, $this->appParams($app, $id, $config, $contact), $siteId);
            $new = true;
        } else {
            // The public URL may have changed since: the launch must go to where the sidecar is now.
            $this->registry->updateApp($id, $config->sidecarRedirectUri(), $config->sidecarLaunchUri(), self::scopes($app));
        }
        $this->settings->set($spec['key'], $id);
        if (!$this->registry->isEnabled($id)) {
            $this->registry->enable($id);
        }
        return [$id, $new];
    }

    /** @return array{0: ?string, 1: bool, 2: string} client id (null: not registered), created now, note */
    private function ensureBackend(GlobalConfig $config, string $siteId, string $contact): array
    {
        if ($this->jwks === null) {
            return [null, false, 'Sidecar backend client not registered: no way to reach the sidecar.'];
        }
        if ($config->sidecarUrl === '') {
            return [null, false, 'Sidecar backend client not registered: set "Sidecar URL (server to server)" first.'];
        }
        $jwksUrl = $config->sidecarUrl . '/.well-known/jwks.json';
        try {
            $jwks = self::checkedJwks(($this->jwks)());
        } catch (\Throwable $e) {
            $why = rtrim($e instanceof SidecarException ? $e->getMessage() : get_class($e), '.');
            $unreachable = "the sidecar's public keys could not be read from $jwksUrl ($why). Start the sidecar, then press \"Register the SMART apps\" again.";
            if ($this->registry->exists($config->backendClientId)) {
                // Still failed (the keys may be stale), but the client registered earlier is kept and shown.
                $this->ids['backend'] = $config->backendClientId;
                return [null, false, "Sidecar backend client kept with the keys registered before: $unreachable"];
            }
            return [null, false, "Sidecar backend client not registered: $unreachable"];
        }
        $wanted = self::backendScopes();
        $scopes = $this->registry->acceptedScopes($wanted);
        if ($scopes === []) {
            return [null, false, 'Sidecar backend client not registered: this OpenEMR accepts none of its system/ scopes. Turn on "Enable OpenEMR FHIR System Scopes" (rest_system_scopes_api) in Admin → Config → Connectors, then press "Register the SMART apps" again.'];
        }
        $dropped = array_values(array_diff($wanted, $scopes));
        $note = $dropped === [] ? '' : 'This OpenEMR does not offer ' . implode(', ', $dropped) . ': left out of the backend client.';
        $scope = implode(' ', $scopes);
        $id = $config->backendClientId;
        $new = false;
        if ($this->registry->exists($id)) {
            $this->registry->updateKeys($id, $jwks, $scope); // the sidecar may have rotated its key
        } else {
            $this->registry->insert($id, $this->backendParams($id, $config, $contact, $jwks, $scope), $siteId);
            $new = true;
        }
        if (!$this->registry->isEnabled($id)) {
            $this->registry->enable($id); // system/ scopes start disabled
        }
        return [$id, $new, $note];
    }

    /**
     * The JWKS as JSON, refusing anything OpenEMR could not verify an RS384 client assertion with.
     *
     * @param array<string, mixed> $jwks
     */
    public static function checkedJwks(array $jwks): string
    {
        $keys = $jwks['keys'] ?? null;
        if (!is_array($keys) || $keys === []) {
            throw new SidecarException('bad_jwks', 'the answer has no "keys"');
        }
        foreach ($keys as $key) {
            if (!is_array($key) || ($key['kty'] ?? '') !== 'RSA' || empty($key['n']) || empty($key['e']) || isset($key['d'])) {
                throw new SidecarException('bad_jwks', 'every key must be a public RSA key (OpenEMR checks RS384 only)');
            }
        }
        return json_encode(['keys' => array_values($keys)], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
    }

    /** @return array<string, mixed> the insertNewClient() parameters (same keys as RFC 7591 registration) */
    private function appParams(string $app, string $clientId, GlobalConfig $config, string $contact): array
    {
        $spec = self::APPS[$app];
        return [
            'client_id' => $clientId,
            'client_role' => $spec['role'],
            'client_name' => $spec['name'],
            'redirect_uris' => [$config->sidecarRedirectUri()],
            'post_logout_redirect_uris' => null,
            'initiate_login_uri' => $config->sidecarLaunchUri(),
            // Public client: the sidecar protects the code with PKCE S256; no secret to leak or rotate.
            'token_endpoint_auth_method' => 'none',
            'grant_types' => 'authorization_code',
            'contacts' => $contact,
            'scope' => self::scopes($app),
            'client_id_issued_at' => time(),
            'registration_access_token' => $this->registry->newRegistrationAccessToken(),
            'registration_client_uri_path' => $this->registry->newRegistrationClientUriPath(),
            // Launched from inside the chart by a signed-in user: no second login (also needs the global
            // oauth_ehr_launch_authorization_flow_skip). Patients always sign in themselves.
            'skip_ehr_launch_authorization_flow' => $app === 'clinician',
        ];
    }

    /** @return array<string, mixed> */
    private function backendParams(string $clientId, GlobalConfig $config, string $contact, string $jwks, string $scope): array
    {
        return [
            'client_id' => $clientId,
            'client_role' => 'user', // what OpenEMR's registration gives application_type "private"
            'client_name' => self::BACKEND_NAME,
            'application_type' => 'private',
            // Confidential: a secret is generated (OpenEMR stores it encrypted); the sidecar authenticates with an
            // RS384 client assertion signed by the key in `jwks`, never with the secret.
            'client_secret' => $this->registry->newClientSecret(),
            'token_endpoint_auth_method' => 'client_secret_post',
            'redirect_uris' => [$config->sidecarUrl . '/'],
            'post_logout_redirect_uris' => null,
            'grant_types' => 'client_credentials',
            'contacts' => $contact,
            'scope' => $scope,
            'jwks' => $jwks,
            'client_id_issued_at' => time(),
            'registration_access_token' => $this->registry->newRegistrationAccessToken(),
            'registration_client_uri_path' => $this->registry->newRegistrationClientUriPath(),
        ];
    }
}
