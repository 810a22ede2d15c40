<?php

/**
 * Registers the sidecar's two SMART apps as OpenEMR OAuth clients, so nobody has to type them in
 * Admin → System → API Clients:
 *
 *  - the clinician app (EHR launch from the chart): `launch openid fhirUser user/<R>.read`, role "user";
 *  - the patient app (standalone launch from the portal card): `launch/patient openid fhirUser patient/<R>.read`,
 *    role "patient".
 *
 * One scope per resource: OpenEMR refuses wildcards (`patient/*.read`), and the scopes registered cap what a
 * token can get (ScopeRepository::finalizeScopes), so they must be exactly what the sidecar asks for
 * (fhir_bridge/web/config.py CCD_RESOURCES; tests/plugin checks both lists are the same).
 *
 * Idempotent: a stored client id that still exists is kept (and re-enabled if an admin disabled it); only a
 * missing one is registered again. A build without the repository methods is skipped with a reason.
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

    public function __construct(
        private readonly ClientRegistry $registry,
        private readonly SettingsStore $settings,
    ) {
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
        if ($config->sidecarLaunchUri() === '') {
            return new RegistrationResult(
                RegistrationResult::SKIPPED,
                'SMART clients not registered yet: set "Sidecar public URL (browser)" in Admin → Config → Blue Button Direct, then press "Register the SMART apps".',
            );
        }
        $ids = [];
        $created = [];
        try {
            foreach (self::APPS as $app => $spec) {
                $stored = $this->settings->get($spec['key']);
                if ($stored !== '' && $this->registry->exists($stored)) {
                    if (!$this->registry->isEnabled($stored)) {
                        $this->registry->enable($stored);
                    }
                    $ids[$app] = $stored;
                    continue;
                }
                $id = $this->registry->newClientId();
                if (!$this->registry->insert($id, $this->params($app, $id, $config, $contact), $siteId)) {
                    throw new \RuntimeException('insertNewClient failed');
                }
                $this->registry->enable($id);
                $this->settings->set($spec['key'], $id);
                $ids[$app] = $id;
                $created[] = $app;
            }
        } catch (\Throwable $e) {
            // The admin sees the exception class only: messages from the database layer may quote values.
            return new RegistrationResult(RegistrationResult::FAILED, 'SMART clients not registered: ' . get_class($e) . '.', $ids);
        }
        if ($created === []) {
            return new RegistrationResult(RegistrationResult::UNCHANGED, 'SMART clients already registered (clinician and patient apps).', $ids);
        }
        return new RegistrationResult(
            RegistrationResult::REGISTERED,
            'SMART clients registered: ' . implode(' and ', $created) . ' app. Give the sidecar these client ids (web.smart_client_id).',
            $ids,
        );
    }

    /** @return array<string, mixed> the insertNewClient() parameters (same keys as RFC 7591 registration) */
    private function params(string $app, string $clientId, GlobalConfig $config, string $contact): array
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
}
