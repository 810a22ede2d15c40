<?php

/**
 * "Config" button of Admin → Modules: the settings live in OpenEMR globals, section "Blue Button Direct".
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../globals.php';

header('Location: ' . $GLOBALS['webroot'] . '/interface/super/edit_globals.php', true, 303);
