<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Common\Twig\TwigContainer;
use OpenEMR\Events\Globals\GlobalsInitializedEvent;
use OpenEMR\Events\PatientPortal\RenderEvent;
use OpenEMR\Events\Patient\Summary\Card\SectionEvent;
use OpenEMR\Modules\BlueButtonDirect\Bootstrap;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use OpenEMR\Modules\BlueButtonDirect\OpenEmrTwigRenderer;
use OpenEMR\Services\Globals\GlobalSetting;
use OpenEMR\Services\Globals\GlobalsService;
use PHPUnit\Framework\TestCase;
use Symfony\Component\EventDispatcher\EventDispatcher;
use Symfony\Component\EventDispatcher\GenericEvent;

final class BootstrapTest extends TestCase
{
    protected function tearDown(): void
    {
        unset($_SESSION['pid'], $GLOBALS['webroot'], $GLOBALS['site_addr_oath']);
    }

    public function testUnconfiguredModuleOnlyOffersItsSettings(): void
    {
        $dispatcher = new EventDispatcher();
        (new Bootstrap($dispatcher, GlobalConfig::fromGlobals([])))->subscribeToEvents();
        $this->assertSame(['globals.initialized', 'twigEnvironment.created'], array_keys($dispatcher->listeners));

        $globals = new GlobalsService();
        $dispatcher->dispatch(new GlobalsInitializedEvent($globals), 'globals.initialized');
        $section = $globals->sections[GlobalConfig::SECTION];
        foreach (array_keys(GlobalConfig::definitions()) as $key) {
            $this->assertArrayHasKey($key, $section);
            [$label, , , $description] = $section[$key]->format();
            $this->assertNotSame('', $label, $key);
            $this->assertGreaterThan(30, strlen($description), "$key is documented");
        }
        $this->assertSame('encrypted', $section[GlobalConfig::API_KEY]->format()[1]);
        // The registered client ids are not settings anyone can type into.
        $this->assertArrayNotHasKey(GlobalConfig::CLINICIAN_CLIENT_ID, $section);
        $this->assertArrayNotHasKey(GlobalConfig::PATIENT_CLIENT_ID, $section);
    }

    public function testStatusBlockShowsFeaturesAndClientIdsReadOnly(): void
    {
        $dispatcher = new EventDispatcher();
        $config = GlobalConfig::fromGlobals([
            GlobalConfig::SIDECAR_URL => 'http://bbdirect:8080', GlobalConfig::API_KEY => 'k',
            GlobalConfig::PUBLIC_URL => 'https://bb.example', GlobalConfig::ENABLE_PINGS => '0',
            GlobalConfig::CLINICIAN_CLIENT_ID => 'clin<"id>', GlobalConfig::PATIENT_CLIENT_ID => '',
            GlobalConfig::ENABLE_SMART => '1',
        ]);
        $GLOBALS['site_addr_oath'] = 'https://emr.example';
        (new Bootstrap($dispatcher, $config))->subscribeToEvents();
        $globals = new GlobalsService();
        $dispatcher->dispatch(new GlobalsInitializedEvent($globals), 'globals.initialized');
        $status = $globals->sections[GlobalConfig::SECTION][GlobalConfig::STATUS]->format();
        $this->assertSame(GlobalSetting::DATA_TYPE_HTML_DISPLAY_SECTION, $status[1]);
        $html = ($status[4][GlobalSetting::DATA_TYPE_OPTION_RENDER_CALLBACK])('bbdirect_status', []);

        $this->assertStringContainsString('value="clin&lt;&quot;id&gt;"', $html, 'escaped');
        $this->assertStringNotContainsString('clin<"id>', $html);
        $this->assertSame(2, substr_count($html, ' readonly '), 'both ids are read-only fields');
        $this->assertStringContainsString('not registered', $html, 'the patient app is not');
        $this->assertStringContainsString('https://emr.example/apis/default/fhir', $html, 'the iss the sidecar needs');
        $this->assertStringContainsString('public/smart-clients.php', $html);
        $on = [];
        $doc = new \DOMDocument();
        $doc->loadHTML('<?xml encoding="utf-8"?>' . $html, LIBXML_NOERROR);
        foreach ($doc->getElementsByTagName('tr') as $row) {
            $cells = $row->getElementsByTagName('td');
            $on[trim($cells->item(0)->textContent)] = trim($cells->item(1)->textContent);
        }
        $this->assertSame('on', $on['Sidecar REST API (server to server)']);
        $this->assertSame('on', $on['SMART EHR launch of the clinician pages']);
        $this->assertSame('on', $on['Share with Direct card in the patient portal']);
        $this->assertSame('off', $on['Change pings to the sidecar']);
    }

    public function testConfiguredModuleListensForCardsPortalAndChanges(): void
    {
        $dispatcher = new EventDispatcher();
        $config = GlobalConfig::fromGlobals([GlobalConfig::SIDECAR_URL => 'http://s/', GlobalConfig::API_KEY => 'k',
            GlobalConfig::PUBLIC_URL => 'https://bb.example/']);
        $this->assertSame('http://s', $config->sidecarUrl);
        (new Bootstrap($dispatcher, $config))->subscribeToEvents();
        foreach (['section.render', RenderEvent::EVENT_DASHBOARD_INJECT_CARD, 'patient.updated', 'service.save.post'] as $name) {
            $this->assertArrayHasKey($name, $dispatcher->listeners, $name);
        }
        $this->assertSame(RenderEvent::EVENT_DASHBOARD_INJECT_CARD, Bootstrap::portalCardEvent());
        $this->assertSame('home.dashboard.inject.card', Bootstrap::PORTAL_CARD_EVENT);
    }

    public function testSmartOnlyModuleShowsTheCardButSendsNoPings(): void
    {
        $dispatcher = new EventDispatcher();
        $registeredOnly = GlobalConfig::fromGlobals([GlobalConfig::CLINICIAN_CLIENT_ID => 'clin-1']);
        $this->assertFalse($registeredOnly->usesEhrLaunch(), 'registered is not enough: the sidecar must know the id');
        $config = GlobalConfig::fromGlobals([GlobalConfig::CLINICIAN_CLIENT_ID => 'clin-1', GlobalConfig::ENABLE_SMART => '1']);
        (new Bootstrap($dispatcher, $config))->subscribeToEvents();
        $this->assertArrayHasKey('section.render', $dispatcher->listeners);
        $this->assertArrayNotHasKey('patient.updated', $dispatcher->listeners);
        $this->assertArrayNotHasKey('home.dashboard.inject.card', $dispatcher->listeners, 'no public URL, no portal card');
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
        $this->assertSame('', $card->getTemplateVariables()['launch_url'], 'no clinician app: the form');
    }

    public function testCardLinksToOpenEmrsEhrLaunchWhenTheClinicianAppIsRegistered(): void
    {
        $GLOBALS['webroot'] = '/openemr';
        \OpenEMR\Common\Csrf\CsrfUtils::$token = 'tok+/=&"';
        $config = new GlobalConfig('http://s', 'k', smartEnabled: true, clinicianClientId: 'AbC-_12');
        $http = new ScriptedTransport();
        $http->json(200, ['items' => []]);
        $bootstrap = new Bootstrap(new EventDispatcher(), $config, new ArrayPatients([5 => ['pat-5', null]]), $http);
        $_SESSION['pid'] = 5;
        $primary = new SectionEvent('primary');
        $bootstrap->addDashboardCard($primary);
        $variables = $primary->getCards()[0]->getTemplateVariables();
        \OpenEMR\Common\Csrf\CsrfUtils::$token = 'csrf-test-token';

        $url = $variables['launch_url'];
        $this->assertStringStartsWith('/openemr/interface/smart/ehr-launch-client.php?', $url);
        parse_str(parse_url($url, PHP_URL_QUERY), $query);
        $this->assertSame(['intent' => 'patient.demographics.dialog', 'client_id' => 'AbC-_12', 'csrf_token' => 'tok+/=&"'], $query);

        // Rendered by a real Twig with OpenEMR's filters: the link is there, escaped, and the form is not.
        $html = (new TwigContainer(Bootstrap::TEMPLATE_DIR))->getTwig()->render('oe-bluebutton-direct/card.html.twig', $variables);
        $doc = new \DOMDocument();
        $doc->loadHTML('<?xml encoding="utf-8"?>' . $html, LIBXML_NOERROR);
        $link = $doc->getElementById('bbdirect-open-pages');
        $this->assertNotNull($link);
        $this->assertSame($url, $link->getAttribute('href'));
        $this->assertSame('Open sharing pages', trim($link->textContent));
        $this->assertStringNotContainsString('name="action" value="add_send"', $html);
        $this->assertStringNotContainsString('tok+/=&"', $html, 'raw token never in the HTML');
    }

    public function testCardWithoutSmartRendersTheAddAndSendForm(): void
    {
        $variables = [
            'configured' => true, 'may_share' => true, 'csrf_token' => 'c"t', 'pid' => 1, 'error' => null,
            'flash' => [], 'prefill_address' => 'a"b@direct.example', 'consent_methods' => ['in_person' => 'In person'],
            'launch_url' => '', 'action_url' => '/m/action.php',
            'authorizations' => [['id' => 'x1', 'address' => '<b>@d.example', 'kind' => 'Always', 'active' => true,
                'state' => 'sent', 'reason' => '', 'trusted' => true]],
        ];
        $html = (new TwigContainer(Bootstrap::TEMPLATE_DIR))->getTwig()->render('oe-bluebutton-direct/card.html.twig', $variables);
        $this->assertStringContainsString('name="action" value="add_send"', $html);
        $this->assertStringContainsString('value="a&quot;b@direct.example"', $html);
        $this->assertStringContainsString('&lt;b&gt;@d.example', $html);
        $this->assertStringNotContainsString('<b>@', $html);
        $this->assertStringNotContainsString('bbdirect-open-pages', $html);
    }

    public function testPortalCardRendersThroughTheTwigTemplate(): void
    {
        $config = new GlobalConfig('http://s', 'k', publicUrl: 'https://bb.example');
        $renderer = new OpenEmrTwigRenderer(Bootstrap::TEMPLATE_DIR);
        $this->assertTrue(OpenEmrTwigRenderer::available());
        $bootstrap = new Bootstrap(new EventDispatcher(), $config, renderer: $renderer);
        $dispatcher = new EventDispatcher();
        $dispatcher->addListener(Bootstrap::portalCardEvent(), [$bootstrap, 'renderPortalCard']);
        // What the portal's fireEvent() Twig function does: dispatch a GenericEvent and capture the output.
        ob_start();
        $dispatcher->dispatch(new GenericEvent(RenderEvent::EVENT_DASHBOARD_INJECT_CARD, []), RenderEvent::EVENT_DASHBOARD_INJECT_CARD);
        $html = ob_get_clean();
        $this->assertStringContainsString('href="https://bb.example/smart/start"', $html);
        $this->assertStringContainsString('id="bbdirect-portal-card"', $html);
        $this->assertStringContainsString('Share with Direct', $html);
    }

    public function testPortalCardFallsBackToEscapedHtml(): void
    {
        $config = new GlobalConfig('http://s', 'k', patientLaunchUrlSetting: 'https://bb.example/launch?a=1&b="x"');
        $broken = new class implements \OpenEMR\Modules\BlueButtonDirect\TemplateRenderer {
            public function render(string $template, array $variables): string
            {
                throw new \RuntimeException('no template path in this portal');
            }
        };
        foreach ([null, $broken] as $renderer) {
            $bootstrap = new Bootstrap(new EventDispatcher(), $config, renderer: $renderer ?? new NoRenderer());
            ob_start();
            $bootstrap->renderPortalCard(new GenericEvent());
            $html = ob_get_clean();
            $this->assertStringContainsString('href="https://bb.example/launch?a=1&amp;b=&quot;x&quot;"', $html);
            $this->assertStringContainsString('Share with Direct', $html);
        }
    }

    public function testTheFallbackIsTheSameTileAsTheTemplate(): void
    {
        $config = new GlobalConfig('http://s', 'k', publicUrl: 'https://bb.example');
        $tile = static function (string $html): array {
            $doc = new \DOMDocument();
            $doc->loadHTML('<?xml encoding="utf-8"?>' . $html, LIBXML_NOERROR);
            $a = $doc->getElementById('bbdirect-portal-card');
            return [$a->getAttribute('class'), $a->getAttribute('href'), $a->getAttribute('data-window-title'),
                preg_replace('/\s+/', ' ', trim($a->textContent))];
        };
        $twig = (new \OpenEMR\Modules\BlueButtonDirect\PortalCard($config, new OpenEmrTwigRenderer(Bootstrap::TEMPLATE_DIR)))->html();
        $plain = (new \OpenEMR\Modules\BlueButtonDirect\PortalCard($config))->html();
        $this->assertSame($tile($twig), $tile($plain));
        $this->assertStringContainsString('col-lg-2', $tile($plain)[0], 'a quick-start tile');
    }

    public function testPortalCardRefusesAnythingButHttpUrls(): void
    {
        foreach (['javascript:alert(1)', 'data:text/html,x', "https://bb.example/\nx", '//bb.example'] as $url) {
            $bootstrap = new Bootstrap(new EventDispatcher(), new GlobalConfig('http://s', 'k', patientLaunchUrlSetting: $url));
            ob_start();
            $bootstrap->renderPortalCard(new GenericEvent());
            $this->assertSame('', ob_get_clean(), $url);
        }
    }
}

/** A renderer that always fails, as on a portal without our template path. */
final class NoRenderer implements \OpenEMR\Modules\BlueButtonDirect\TemplateRenderer
{
    public function render(string $template, array $variables): string
    {
        throw new \LogicException('no Twig');
    }
}
