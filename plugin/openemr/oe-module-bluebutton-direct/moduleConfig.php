<?php

/**
 * "Config" button of Admin → Modules → Manage Modules: opens the module's own settings page (the Blue Button
 * Direct settings, the SMART client status and "Register the SMART apps"), not the first tab of the globals page.
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../globals.php';

header('Location: ' . ($GLOBALS['webroot'] ?? '') . '/interface/modules/custom_modules/oe-module-bluebutton-direct/public/settings.php', true, 303);
