<?php

/**
 * Module lifecycle hooks called by OpenEMR's module manager (Admin → Modules).
 *
 * OpenEMR requires this class at the module root, without a namespace, extending
 * OpenEMR\Core\AbstractModuleActionListener. Enabling the module registers the sidecar's SMART apps as OpenEMR
 * API clients (SmartClientRegistrar) where this OpenEMR build allows it. The manager has already enabled the
 * module when it calls us, and shows any string other than the status it passed as an alert: so a skipped or
 * failed registration comes back as a sentence for the administrator (also kept in the settings status).
 *
 * @license Apache-2.0
 */

use OpenEMR\Core\AbstractModuleActionListener;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrSettingsStore;
use OpenEMR\Modules\BlueButtonDirect\RegistrationResult;
use OpenEMR\Modules\BlueButtonDirect\SmartSetup;

class ModuleManagerListener extends AbstractModuleActionListener
{
    /** The last registration outcome (for tests and the settings page). */
    public ?RegistrationResult $lastRegistration = null;

    /** @var callable(): RegistrationResult */
    private $registerSmartClients;

    /** @var callable(): void */
    private $writeDefaults;

    /**
     * @param (callable(): RegistrationResult)|null $registerSmartClients tests pass their own
     * @param (callable(): void)|null $writeDefaults tests pass their own
     */
    public function __construct(?callable $registerSmartClients = null, ?callable $writeDefaults = null)
    {
        parent::__construct();
        $this->registerSmartClients = $registerSmartClients ?? static function (): RegistrationResult {
            self::autoload();
            return SmartSetup::registerNow();
        };
        // Module settings have no `globals` rows until someone saves the globals page, so presets
        // (OPENEMR_SETTING_bbdirect_* in the environment) and defaults are written on install and enable.
        $this->writeDefaults = $writeDefaults ?? static function (): void {
            self::autoload();
            $types = array_map(static fn(array $d): string => $d[1], GlobalConfig::definitions());
            (new OpenEmrSettingsStore())->writeMissing(GlobalConfig::initialValues(GlobalConfig::environment()), $types);
        };
    }

    /**
     * @param string $methodName action: install, enable, disable, unregister, install_sql, upgrade_sql
     * @param string $modId module id
     * @param string $currentActionStatus status so far; returned unchanged on success
     */
    public function moduleManagerAction($methodName, $modId, string $currentActionStatus = 'Success'): string
    {
        if (is_string($methodName) && in_array($methodName, ['install', 'enable', 'disable', 'unregister'], true)) {
            try {
                return $this->$methodName($modId, $currentActionStatus);
            } catch (\Throwable $e) {
                // The manager shows this string to the administrator; never a stack trace or PHI.
                return "Blue Button Direct: " . get_class($e);
            }
        }
        return $currentActionStatus;
    }

    public static function initListenerSelf(): ModuleManagerListener
    {
        return new self();
    }

    public static function getModuleNamespace(): string
    {
        return 'OpenEMR\\Modules\\BlueButtonDirect\\';
    }

    private function install($modId, $currentActionStatus): string
    {
        try {
            ($this->writeDefaults)();
        } catch (\Throwable $e) {
            error_log('bbdirect: writing the default settings failed: ' . get_class($e));
        }
        return $currentActionStatus;
    }

    private function enable($modId, $currentActionStatus): string
    {
        try {
            ($this->writeDefaults)();
        } catch (\Throwable $e) {
            error_log('bbdirect: writing the default settings failed: ' . get_class($e));
        }
        try {
            $this->lastRegistration = ($this->registerSmartClients)();
        } catch (\Throwable $e) {
            // Registration is a convenience: the module works server to server without it.
            $this->lastRegistration = new RegistrationResult(RegistrationResult::FAILED, 'SMART clients not registered: ' . get_class($e) . '.');
        }
        if ($this->lastRegistration->ok()) {
            return $currentActionStatus;
        }
        return 'Blue Button Direct is enabled. ' . $this->lastRegistration->message;
    }

    private function disable($modId, $currentActionStatus): string
    {
        return $currentActionStatus;
    }

    private function unregister($modId, $currentActionStatus): string
    {
        return $currentActionStatus;
    }

    /** OpenEMR registers getModuleNamespace() before calling us; this covers builds that do not. */
    private static function autoload(): void
    {
        if (class_exists(SmartSetup::class)) {
            return;
        }
        spl_autoload_register(static function (string $class): void {
            $prefix = self::getModuleNamespace();
            if (str_starts_with($class, $prefix)) {
                $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                }
            }
        });
    }
}
