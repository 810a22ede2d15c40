<?php

/**
 * The module's own settings page (the module manager's Config button leads here, through moduleConfig.php):
 * the Blue Button Direct settings (the same `globals` rows as Admin → Config → Blue Button Direct), the status
 * block with the three SMART clients, and "Register the SMART apps". Administrators only; every POST is
 * CSRF-checked. Plain HTML forms: works without OpenEMR's CSS/JS build.
 *
 * @license Apache-2.0
 */

require_once __DIR__ . '/../../../../globals.php';

use OpenEMR\Common\Acl\AclMain;
use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrSession;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrSettingsStore;
use OpenEMR\Modules\BlueButtonDirect\SmartSetup;

if (!AclMain::aclCheckCore('admin', 'super')) {
    http_response_code(403);
    echo text(xl('Not authorized'));
    exit;
}
$store = new OpenEmrSettingsStore();
$message = null;
if (($_SERVER['REQUEST_METHOD'] ?? '') === 'POST') {
    if (!OpenEmrSession::verifyCsrf((string) ($_POST['csrf_token_form'] ?? ''))) {
        http_response_code(403);
        echo text(xl('Your session expired. Please reload the page and try again.'));
        exit;
    }
    $action = (string) ($_POST['action'] ?? '');
    if ($action === 'save') {
        foreach (GlobalConfig::definitions() as $key => [, $type]) {
            $posted = $_POST['setting'][$key] ?? null;
            if ($type === 'bool') {
                $store->set($key, $posted === '1' ? '1' : '0');
            } elseif ($type === 'encrypted') {
                if (is_string($posted) && trim($posted) !== '') { // empty = keep the stored secret
                    $store->set($key, (string) (new \OpenEMR\Common\Crypto\CryptoGen())->encryptStandard(trim($posted)));
                }
            } elseif (is_string($posted)) {
                $store->set($key, trim($posted));
            }
        }
        $message = xl('Settings saved.');
    } elseif ($action === 'register') {
        $message = SmartSetup::registerNow()->message;
    }
}
$config = GlobalConfig::fromOpenEmr();
$status = (new Bootstrap(Bootstrap::eventDispatcher(), $config))->settingsStatus();
$csrf = OpenEmrSession::csrfToken();
$self = Bootstrap::moduleUrl('public/settings.php');
?>
<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title><?php echo text(xl('Blue Button Direct settings')); ?></title>
    <?php \OpenEMR\Core\Header::setupHeader(); ?>
</head>
<body>
<main class="container mt-3" id="bbdirect-settings">
    <h1 class="h3"><?php echo text(xl('Blue Button Direct settings')); ?></h1>
    <?php if ($message !== null) : ?>
        <div class="alert alert-info" role="status" id="bbdirect-settings-message"><?php echo text($message); ?></div>
    <?php endif; ?>
    <form method="post" action="<?php echo attr($self); ?>" id="bbdirect-settings-form">
        <input type="hidden" name="csrf_token_form" value="<?php echo attr($csrf); ?>">
        <input type="hidden" name="action" value="save">
        <?php foreach (GlobalConfig::definitions() as $key => [$label, $type, $default, $description]) :
            $field = 'bbdirect-setting-' . $key;
            $value = $store->has($key) ? $store->get($key) : (GlobalConfig::environment()[$key] ?? $default); ?>
            <div class="form-group">
            <?php if ($type === 'bool') : ?>
                <input type="hidden" name="setting[<?php echo attr($key); ?>]" value="0">
                <input type="checkbox" id="<?php echo attr($field); ?>" name="setting[<?php echo attr($key); ?>]" value="1"<?php echo $value === '1' ? ' checked' : ''; ?>>
                <label for="<?php echo attr($field); ?>"><?php echo text(xl($label)); ?></label>
            <?php else : ?>
                <label for="<?php echo attr($field); ?>"><?php echo text(xl($label)); ?></label>
                <?php if ($type === 'encrypted') : ?>
                    <input class="form-control" type="password" id="<?php echo attr($field); ?>" name="setting[<?php echo attr($key); ?>]" value="" autocomplete="new-password"
                           placeholder="<?php echo attr($value !== '' ? xl('stored; leave empty to keep it') : xl('not set')); ?>">
                <?php else : ?>
                    <input class="form-control" type="text" id="<?php echo attr($field); ?>" name="setting[<?php echo attr($key); ?>]" value="<?php echo attr($value); ?>">
                <?php endif; ?>
            <?php endif; ?>
                <small class="form-text text-muted"><?php echo text(xl($description)); ?></small>
            </div>
        <?php endforeach; ?>
        <button type="submit" class="btn btn-primary" id="bbdirect-settings-save"><?php echo text(xl('Save')); ?></button>
    </form>
    <h2 class="h4 mt-4"><?php echo text(xl('Status and SMART clients')); ?></h2>
    <?php echo $status->html(); // every value inside is escaped by SettingsStatus ?>
    <form method="post" action="<?php echo attr($self); ?>" class="mt-3" id="bbdirect-register-form">
        <input type="hidden" name="csrf_token_form" value="<?php echo attr($csrf); ?>">
        <input type="hidden" name="action" value="register">
        <button type="submit" class="btn btn-primary" id="bbdirect-register"><?php echo text(xl('Register the SMART apps now')); ?></button>
    </form>
</main>
</body>
</html>
