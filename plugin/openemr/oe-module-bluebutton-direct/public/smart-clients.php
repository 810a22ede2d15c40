<?php

/**
 * Former address of "Register the SMART apps": the module's settings page does it now (public/settings.php).
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../../globals.php';

use OpenEMR\Modules\BlueButtonDirect\Bootstrap;

header('Location: ' . Bootstrap::moduleUrl('public/settings.php'), true, 303);
