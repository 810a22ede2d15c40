<?php

if (is_file('/usr/share/php/Twig/autoload.php')) {
    require_once '/usr/share/php/Twig/autoload.php'; // Debian php-twig: templates are rendered for real
}
require __DIR__ . '/stubs/openemr.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'OpenEMR\\Modules\\BlueButtonDirect\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
require __DIR__ . '/Unit/Support.php';
