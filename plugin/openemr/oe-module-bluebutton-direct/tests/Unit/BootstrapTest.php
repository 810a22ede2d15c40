<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Events\Globals\GlobalsInitializedEvent;
use OpenEMR\Events\Patient\Summary\Card\SectionEvent;
use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Services\Globals\GlobalsService;
use PHPUnit\Framework\TestCase;
use Symfony\Component\EventDispatcher\EventDispatcher;

final class BootstrapTest extends TestCase
{
    public function testUnconfiguredModuleOnlyOffersItsSettings(): void
    {
        $dispatcher = new EventDispatcher();
        (new Bootstrap($dispatcher, GlobalConfig::fromGlobals([])))->subscribeToEvents();
        $this->assertSame(['globals.initialized', 'twigEnvironment.created'], array_keys($dispatcher->listeners));

        $globals = new GlobalsService();
        $dispatcher->dispatch(new GlobalsInitializedEvent($globals), 'globals.initialized');
        $keys = array_keys($globals->sections[GlobalConfig::SECTION]);
        $this->assertContains(GlobalConfig::SIDECAR_URL, $keys);
        $this->assertContains(GlobalConfig::API_KEY, $keys);
        $this->assertSame('encrypted', $globals->sections[GlobalConfig::SECTION][GlobalConfig::API_KEY]->dataType);
    }

    public function testConfiguredModuleListensForCardsPortalAndChanges(): void
    {
        $dispatcher = new EventDispatcher();
        $config = GlobalConfig::fromGlobals([GlobalConfig::SIDECAR_URL => 'http://s/', GlobalConfig::API_KEY => 'k']);
        $this->assertSame('http://s', $config->sidecarUrl);
        (new Bootstrap($dispatcher, $config))->subscribeToEvents();
        foreach (['section.render', 'home.dashboard.inject.card', 'patient.updated', 'service.save.post'] as $name) {
            $this->assertArrayHasKey($name, $dispatcher->listeners, $name);
        }
    }

    public function testCardGoesInThePrimaryColumnOnly(): void
    {
        $dispatcher = new EventDispatcher();
        $http = new ScriptedTransport();
        $http->json(200, ['items' => []]);
        $config = new GlobalConfig('http://s', 'k');
        $bootstrap = new Bootstrap($dispatcher, $config, new ArrayPatients([5 => ['pat-5', null]]), $http);
        $_SESSION['pid'] = 5;

        $secondary = new SectionEvent('secondary');
        $bootstrap->addDashboardCard($secondary);
        $this->assertSame([], $secondary->getCards());

        $primary = new SectionEvent('primary');
        $bootstrap->addDashboardCard($primary);
        [$card] = $primary->getCards();
        $this->assertSame(Bootstrap::CARD_ID, $card->getIdentifier());
        $this->assertSame('oe-bluebutton-direct/card.html.twig', $card->getTemplateFile());
        $this->assertFileExists(Bootstrap::TEMPLATE_DIR . '/' . $card->getTemplateFile());
        $this->assertSame('csrf-test-token', $card->getTemplateVariables()['csrf_token']);
        unset($_SESSION['pid']);
    }

    public function testPortalCardEscapesTheLaunchUrl(): void
    {
        $config = new GlobalConfig('http://s', 'k', patientLaunchUrl: 'https://bb.example/launch?a=1&b="x"');
        $bootstrap = new Bootstrap(new EventDispatcher(), $config);
        ob_start();
        $bootstrap->renderPortalCard(new \stdClass());
        $html = ob_get_clean();
        $this->assertStringContainsString('href="https://bb.example/launch?a=1&amp;b=&quot;x&quot;"', $html);
        $this->assertStringContainsString('Share with Direct', $html);
    }
}
