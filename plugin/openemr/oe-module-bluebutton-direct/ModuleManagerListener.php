<?php

/**
 * Module lifecycle hooks called by OpenEMR's module manager (Admin → Modules).
 *
 * OpenEMR requires this class at the module root, without a namespace, extending
 * OpenEMR\Core\AbstractModuleActionListener. Enabling the module is where we would self-register the SMART
 * client; we keep that optional (a setting) because OpenEMR only offers it on newer builds.
 *
 * @license Apache-2.0
 */

use OpenEMR\Core\AbstractModuleActionListener;

class ModuleManagerListener extends AbstractModuleActionListener
{
    public function __construct()
    {
        parent::__construct();
    }

    /**
     * @param string $methodName action: install, enable, disable, unregister, install_sql, upgrade_sql
     * @param string $modId module id
     * @param string $currentActionStatus status so far; returned unchanged on success
     */
    public function moduleManagerAction($methodName, $modId, string $currentActionStatus = 'Success'): string
    {
        if (method_exists(self::class, $methodName)) {
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

    private function enable($modId, $currentActionStatus): mixed
    {
        return $currentActionStatus;
    }

    private function disable($modId, $currentActionStatus): mixed
    {
        return $currentActionStatus;
    }

    private function unregister($modId, $currentActionStatus): mixed
    {
        return $currentActionStatus;
    }
}
