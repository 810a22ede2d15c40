<?php

/**
 * Form target of the dashboard card (Add & Send, Stop sending). POST only; CSRF and ACL are checked by
 * CardController; the outcome is kept in the session and shown on the card after the redirect back.
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../../globals.php';

use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    http_response_code(405);
    exit;
}
$pid = (int) ($_SESSION['pid'] ?? 0); // the chart that is open, never a posted value
$bootstrap = new Bootstrap($GLOBALS['kernel']->getEventDispatcher(), GlobalConfig::fromOpenEmr());
$result = $bootstrap->cardController()->handle($_POST, $pid, (string) ($_SESSION['authUser'] ?? ''));
$_SESSION['bbdirect_flash'] = $result->toArray();
header('Location: ' . $GLOBALS['webroot'] . '/interface/patient_file/summary/demographics.php', true, 303);
