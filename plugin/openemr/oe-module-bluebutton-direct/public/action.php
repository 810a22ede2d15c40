<?php

/**
 * Form target of the dashboard card (Add & Send, Stop sending). POST only; CSRF and ACL are checked by
 * CardController; the outcome is kept in the session and shown on the card after the redirect back.
 *
 * @license Apache-2.0
 */

// This page writes one session value (the outcome shown on the card): open the session for writing, as
// OpenEMR's own writing scripts do (8.x otherwise logs "Session reopened for writing after read_and_close").
$sessionAllowWrite = true;
require_once __DIR__ . '/../../../../globals.php';

use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrSession;

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    http_response_code(405);
    exit;
}
$pid = OpenEmrSession::pid(); // the chart that is open, never a posted value
$bootstrap = new Bootstrap(Bootstrap::eventDispatcher(), GlobalConfig::fromOpenEmr());
$result = $bootstrap->cardController()->handle($_POST, $pid, OpenEmrSession::user());
// SessionUtil::setSession: a plain $_SESSION write is lost on 7.0.x (read-and-closed session) and is not the
// session object on 8.x.
OpenEmrSession::set(Bootstrap::FLASH_KEY, $result->toArray());
header('Location: ' . ($GLOBALS['webroot'] ?? '') . '/interface/patient_file/summary/demographics.php', true, 303);
