<?php

/**
 * Wiring of SmartClientRegistrar to the running OpenEMR (globals table, ClientRepository, session site), shared
 * by ModuleManagerListener::enable() and the "Register the SMART apps" button of the settings.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class SmartSetup
{
    public static function registerNow(): RegistrationResult
    {
        $store = new OpenEmrSettingsStore();
        // Re-read our keys from the table: $GLOBALS may predate a save made earlier in this request.
        $globals = $GLOBALS;
        foreach ([GlobalConfig::PUBLIC_URL, GlobalConfig::CLINICIAN_CLIENT_ID, GlobalConfig::PATIENT_CLIENT_ID] as $key) {
            $value = $store->get($key);
            if ($value !== '') {
                $globals[$key] = $value;
            }
        }
        $registrar = new SmartClientRegistrar(new OpenEmrClientRegistry(), $store);
        $site = (string) ($_SESSION['site_id'] ?? 'default');
        $contact = (string) ($GLOBALS['practice_return_email_path'] ?? '');
        return $registrar->register(GlobalConfig::fromGlobals($globals), $site === '' ? 'default' : $site, $contact);
    }
}
