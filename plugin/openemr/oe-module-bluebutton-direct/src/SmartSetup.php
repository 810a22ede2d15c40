<?php

/**
 * Wiring of SmartClientRegistrar to the running OpenEMR (globals table, ClientRepository, session site, the
 * sidecar's JWKS), shared by ModuleManagerListener::enable() and the "Register the SMART apps" button.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class SmartSetup
{
    /** How long enabling the module waits for the sidecar's public keys. */
    public const JWKS_TIMEOUT_MS = 5000;

    public static function registerNow(): RegistrationResult
    {
        $store = new OpenEmrSettingsStore();
        // Re-read our keys from the table: $GLOBALS may predate a save made earlier in this request.
        $globals = $GLOBALS;
        foreach (array_merge(array_keys(GlobalConfig::definitions()), [GlobalConfig::CLINICIAN_CLIENT_ID, GlobalConfig::PATIENT_CLIENT_ID]) as $key) {
            if ($store->has($key)) {
                $globals[$key] = $store->get($key);
            }
        }
        $config = GlobalConfig::fromGlobals(GlobalConfig::withEnvironment($globals, GlobalConfig::environment()), GlobalConfig::openEmrDecrypt());
        $client = new SidecarClient($config->sidecarUrl, $config->apiKey);
        $registrar = new SmartClientRegistrar(
            new OpenEmrClientRegistry(),
            $store,
            static fn(): array => $client->publicJwks(self::JWKS_TIMEOUT_MS),
        );
        $site = (string) (OpenEmrSession::get('site_id') ?? 'default');
        $contact = (string) ($GLOBALS['practice_return_email_path'] ?? '');
        return $registrar->register($config, $site === '' ? 'default' : $site, $contact);
    }
}
