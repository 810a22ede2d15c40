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
        unset($_SESSION['pid'], $_SESSION[Bootstrap::FLASH_KEY], $GLOBALS['webroot'], $GLOBALS['site_addr_oath']);
        Bootstrap::resetFlash();
    }

    public function testTheSettingsSectionIsCreatedOnceAndNeverTwice(): void
    {
        // GlobalsService::createSection throws when the section exists (OpenEMR 7.0.3 and 8.1).
        $dispatcher = new EventDispatcher();
        (new Bootstrap($dispatcher, GlobalConfig::fromGlobals([])))->subscribeToEvents();
        $globals = new GlobalsService();
        $dispatcher->dispatch(new GlobalsInitializedEvent($globals), 'globals.initialized');
        $dispatcher->dispatch(new GlobalsInitializedEvent($globals), 'globals.initialized');
        $this->assertArrayHasKey(GlobalConfig::BACKEND_CLIENT_ID, $globals->sections[GlobalConfig::SECTION]);
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
        $this->assertSame(3, substr_count($html, ' readonly '), 'clinician, patient and backend ids are read-only fields');
        $this->assertStringContainsString('value="bbdirect-sidecar"', $html, 'the backend client id (setting default)');
        $this->assertStringContainsString('not registered', $html, 'the patient app is not');
        $this->assertStringContainsString('https://emr.example/apis/default/fhir', $html, 'the iss the sidecar needs');
        $this->assertStringContainsString('public/settings.php', $html);
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
        foreach (['section.render', RenderEvent::EVENT_DASHBOARD_INJECT_CARD, 'patient.updated', 'patient.updated.aux',
            'service.save.pre', 'service.save.post'] as $name) {
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
        $this->assertSame('Direct sharing', $card->getTitle());
        $this->assertTrue($card->canCollapse());
        $this->assertFalse($card->isInitiallyCollapsed());
    }

    public function testTheCardExtendsCardBaseForItsTitleAndCollapse(): void
    {
        $template = file_get_contents(Bootstrap::TEMPLATE_DIR . '/oe-bluebutton-direct/card.html.twig');
        $this->assertMatchesRegularExpression('/\{%\s*extends\s+"patient\/card\/card_base\.html\.twig"\s*%\}/', $template);
        // What demographics.php passes to every card, then the card's own variables.
        $variables = ['title' => 'Direct sharing', 'id' => Bootstrap::CARD_ID, 'initiallyCollapsed' => false, 'forceAlwaysOpen' => false,
            'configured' => false, 'launch_url' => ''];
        $html = (new TwigContainer(Bootstrap::TEMPLATE_DIR))->getTwig()->render('oe-bluebutton-direct/card.html.twig', $variables);
        $this->assertStringContainsString('data-stand-in="card_base"', $html);
        $this->assertStringContainsString('>Direct sharing<', $html);
        $this->assertStringContainsString('id="bbdirect_direct_sharing"', $html);
        $this->assertStringContainsString('not configured', $html);
        // The collapse works without jQuery: the card's own script, only when Bootstrap's plugin is missing.
        $this->assertStringContainsString('window.jQuery.fn.collapse', $html);
        $this->assertStringContainsString('"bbdirect_direct_sharing"', $html);
    }

    public function testTheLastActionsOutcomeIsShownOnceOnTheCard(): void
    {
        $_SESSION[Bootstrap::FLASH_KEY] = ['ok' => true, 'message' => 'Sharing set up'];
        Bootstrap::takeFlash();
        $this->assertArrayNotHasKey(Bootstrap::FLASH_KEY, $_SESSION, 'taken out of the session before any output');
        $http = new ScriptedTransport();
        $http->json(200, ['authorizations' => []]);
        $bootstrap = new Bootstrap(new EventDispatcher(), new GlobalConfig('http://s', 'k'), new ArrayPatients([5 => ['pat-5', null]]), $http);
        $_SESSION['pid'] = 5;
        $primary = new SectionEvent('primary');
        $bootstrap->addDashboardCard($primary);
        $this->assertSame('Sharing set up', $primary->getCards()[0]->getTemplateVariables()['flash']['message']);
        $_SERVER['SCRIPT_NAME'] = '/openemr/interface/patient_file/summary/demographics.php';
        $this->assertTrue(Bootstrap::isDashboardRequest());
        $_SERVER['SCRIPT_NAME'] = '/openemr/interface/main/tabs/main.php';
        $this->assertFalse(Bootstrap::isDashboardRequest());
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
                'state' => 'dispatched', 'state_label' => 'Delivered', 'when' => '2026-12-07T20:00:00Z', 'reason' => '', 'untrusted' => false]],
            'title' => 'Direct sharing', 'id' => Bootstrap::CARD_ID,
        ];
        $html = (new TwigContainer(Bootstrap::TEMPLATE_DIR))->getTwig()->render('oe-bluebutton-direct/card.html.twig', $variables);
        $this->assertStringContainsString('name="action" value="add_send"', $html);
        $this->assertStringContainsString('value="a&quot;b@direct.example"', $html);
        $this->assertStringContainsString('&lt;b&gt;@d.example', $html);
        $this->assertStringNotContainsString('<b>@', $html);
        $this->assertStringNotContainsString('bbdirect-open-pages', $html);
        $this->assertStringContainsString('Delivered', $html);
        $this->assertStringNotContainsString('not in a trust bundle', $html);
    }

    public function testARefusedAddressIsShownNextToTheField(): void
    {
        $variables = [
            'configured' => true, 'may_share' => true, 'csrf_token' => 't', 'pid' => 1, 'error' => null,
            'flash' => ['ok' => false, 'message' => 'No certificate <was> found.', 'code' => 'no_certificate', 'field' => 'address',
                'values' => ['address' => 'bob@d.example', 'always' => true, 'consent_method' => 'in_person']],
            'prefill_address' => 'bob@d.example', 'consent_methods' => ['in_person' => 'In person'],
            'launch_url' => '', 'action_url' => '/m/action.php', 'authorizations' => [], 'title' => 'Direct sharing', 'id' => Bootstrap::CARD_ID,
        ];
        $html = (new TwigContainer(Bootstrap::TEMPLATE_DIR))->getTwig()->render('oe-bluebutton-direct/card.html.twig', $variables);
        $doc = new \DOMDocument();
        $doc->loadHTML('<?xml encoding="utf-8"?>' . $html, LIBXML_NOERROR);
        $input = $doc->getElementById('bbdirect-address');
        $this->assertStringContainsString('is-invalid', $input->getAttribute('class'));
        $this->assertSame('bbdirect-address-error', $input->getAttribute('aria-describedby'));
        $this->assertSame('No certificate <was> found.', trim($doc->getElementById('bbdirect-address-error')->textContent));
        $this->assertNull($doc->getElementById('bbdirect-result'), 'not twice');
        $this->assertStringContainsString('value="in_person" class="form-check-input" required checked', $html, 'what was chosen is kept');
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
