<?php

/**
 * "Register the SMART apps" (linked from the settings status block): shows the status read-only and, on POST
 * by an administrator with a valid CSRF token, registers the sidecar's clinician and patient apps as OpenEMR
 * API clients (idempotent: existing ones are kept). Same code path as enabling the module.
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../../globals.php';

use OpenEMR\Common\Acl\AclMain;
use OpenEMR\Common\Csrf\CsrfUtils;
use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\SmartSetup;

if (!AclMain::aclCheckCore('admin', 'super')) {
    http_response_code(403);
    echo text(xl('Not authorized'));
    exit;
}
$message = null;
if (($_SERVER['REQUEST_METHOD'] ?? '') === 'POST') {
    if (!CsrfUtils::verifyCsrfToken((string) ($_POST['csrf_token_form'] ?? ''))) {
        CsrfUtils::csrfNotVerified();
    }
    $message = SmartSetup::registerNow()->message;
}
$config = GlobalConfig::fromOpenEmr();
$status = (new Bootstrap($GLOBALS['kernel']->getEventDispatcher(), $config))->settingsStatus();
?>
<!DOCTYPE html>
<html>
<head>
    <title><?php echo text(xl('Blue Button Direct: SMART apps')); ?></title>
    <?php \OpenEMR\Core\Header::setupHeader(); ?>
</head>
<body>
<div class="container mt-3">
    <h1 class="h3"><?php echo text(xl('Blue Button Direct: SMART apps')); ?></h1>
    <?php if ($message !== null) : ?>
        <div class="alert alert-info" role="status"><?php echo text($message); ?></div>
    <?php endif; ?>
    <?php echo $status->html(); // every value inside is escaped by SettingsStatus ?>
    <form method="post" class="mt-3">
        <input type="hidden" name="csrf_token_form" value="<?php echo attr(CsrfUtils::collectCsrfToken()); ?>">
        <button type="submit" class="btn btn-primary"><?php echo text(xl('Register the SMART apps now')); ?></button>
    </form>
</div>
</body>
</html>
