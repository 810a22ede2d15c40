<?php

/**
 * Where the module keeps the values it writes itself (the registered SMART client ids): OpenEMR globals.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

interface SettingsStore
{
    public function get(string $key): string;

    public function set(string $key, string $value): void;
}
