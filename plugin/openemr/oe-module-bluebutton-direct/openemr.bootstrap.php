<?php

/**
 * Blue Button Direct module bootstrap.
 *
 * OpenEMR includes this file on every request while the module is enabled, with $eventDispatcher and
 * $classLoader in scope (src/Core/ModulesApplication.php). We only register our namespace and subscribe
 * listeners: no work happens here, so a misconfigured or unreachable sidecar can never slow a page down.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

/**
 * @global \OpenEMR\Core\ModulesClassLoader $classLoader
 * @global \Symfony\Component\EventDispatcher\EventDispatcherInterface $eventDispatcher
 */
$classLoader->registerNamespaceIfNotExists('OpenEMR\\Modules\\BlueButtonDirect\\', __DIR__ . DIRECTORY_SEPARATOR . 'src');

if (Bootstrap::isDashboardRequest()) {
    Bootstrap::takeFlash(); // before any output: the last card action's outcome, shown once
}
$bootstrap = new Bootstrap($eventDispatcher, GlobalConfig::fromOpenEmr());
$bootstrap->subscribeToEvents();
