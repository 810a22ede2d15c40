<?php

/**
 * Wires the module into OpenEMR's events. Every listener is cheap until its event fires, and none of them
 * can break the page that fired it: errors are caught and shown (card) or counted (pings).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

use OpenEMR\Common\Acl\AclMain;
use OpenEMR\Events\Core\TwigEnvironmentEvent;
use OpenEMR\Events\Globals\GlobalsInitializedEvent;
use OpenEMR\Events\Patient\PatientUpdatedEvent;
use OpenEMR\Events\Patient\Summary\Card\CardModel;
use OpenEMR\Events\Patient\Summary\Card\SectionEvent;
use OpenEMR\Events\Services\ServiceSaveEvent;
use OpenEMR\Services\Globals\GlobalSetting;
use Symfony\Component\EventDispatcher\EventDispatcherInterface;

final class Bootstrap
{
    public const CARD_ID = 'bbdirect_direct_sharing';
    public const MODULE_DIR = 'oe-module-bluebutton-direct';
    public const TEMPLATE_DIR = __DIR__ . '/../templates';
    /** OpenEMR\Events\PatientPortal\RenderEvent::EVENT_DASHBOARD_INJECT_CARD (fired from portal/home.php). */
    public const PORTAL_CARD_EVENT = 'home.dashboard.inject.card';
    /** SMARTLaunchToken::INTENT_PATIENT_DEMOGRAPHICS_DIALOG: the one intent every 7.x build accepts. */
    public const EHR_LAUNCH_INTENT = 'patient.demographics.dialog';

    /** Session key of the last card action's outcome (written by public/action.php, shown once on the card). */
    public const FLASH_KEY = 'bbdirect_flash';

    private ?ChangePinger $pinger = null;

    /** @var array<string, mixed>|null the flash taken from the session at the start of a dashboard request */
    private static ?array $flash = null;

    public function __construct(
        private readonly EventDispatcherInterface $dispatcher,
        private readonly GlobalConfig $config,
        private readonly ?PatientDirectory $patients = null,
        private readonly ?HttpTransport $http = null,
        private readonly ?TemplateRenderer $renderer = null,
    ) {
    }

    public function subscribeToEvents(): void
    {
        $this->dispatcher->addListener(GlobalsInitializedEvent::EVENT_HANDLE, [$this, 'addGlobalSettings']);
        $this->dispatcher->addListener(TwigEnvironmentEvent::EVENT_CREATED, [$this, 'addTemplatePath']);
        $api = $this->config->isConfigured();
        if ($this->config->cardEnabled && ($api || $this->config->usesEhrLaunch())) {
            $this->dispatcher->addListener(SectionEvent::EVENT_HANDLE, [$this, 'addDashboardCard']);
        }
        if ($this->config->portalEnabled && $this->config->patientLaunchUrl() !== '') {
            $this->dispatcher->addListener(self::portalCardEvent(), [$this, 'renderPortalCard']);
        }
        if ($api && $this->config->pingsEnabled) {
            foreach (self::pingEvents() as $name => $method) {
                $this->dispatcher->addListener($name, [$this->pinger(), $method]);
            }
        }
    }

    /**
     * The save events that carry a patient, by name (from OpenEMR's classes where they exist) => ChangePinger
     * method. Which screens fire them on each OpenEMR line is in the README ("Change pings"); the sidecar's
     * `_lastUpdated` polling covers the rest. service.save.pre is included because some services (8.x
     * PatientIssuesService::createIssue for problems and allergies) fire only that one; the ping is sent at the
     * end of the request, after the save.
     *
     * @return array<string, string>
     */
    public static function pingEvents(): array
    {
        $name = static fn(string $constant, string $fallback): string => defined($constant) ? (string) constant($constant) : $fallback;
        return [
            $name(PatientUpdatedEvent::class . '::EVENT_HANDLE', 'patient.updated') => 'onPatientUpdated',
            $name('OpenEMR\\Events\\Patient\\PatientUpdatedEventAux::EVENT_HANDLE', 'patient.updated.aux') => 'onPatientUpdatedAux',
            $name(ServiceSaveEvent::class . '::EVENT_PRE_SAVE', 'service.save.pre') => 'onServiceSaved',
            $name(ServiceSaveEvent::class . '::EVENT_POST_SAVE', 'service.save.post') => 'onServiceSaved',
        ];
    }

    /** The portal event name, from OpenEMR's class when this build has it. */
    public static function portalCardEvent(): string
    {
        $constant = 'OpenEMR\\Events\\PatientPortal\\RenderEvent::EVENT_DASHBOARD_INJECT_CARD';
        return defined($constant) ? (string) constant($constant) : self::PORTAL_CARD_EVENT;
    }

    public function addGlobalSettings(GlobalsInitializedEvent $event): void
    {
        $service = $event->getGlobalsService();
        // GlobalsService::createSection throws when the section exists (another listener, a second dispatch).
        $existing = method_exists($service, 'getGlobalsMetadata') ? $service->getGlobalsMetadata() : [];
        if (!is_array($existing) || !array_key_exists(GlobalConfig::SECTION, $existing)) {
            $service->createSection(GlobalConfig::SECTION, 'Report');
        }
        $status = $this->statusSetting();
        if ($status !== null) {
            $service->appendToSection(GlobalConfig::SECTION, GlobalConfig::STATUS, $status);
        }
        foreach (GlobalConfig::definitions() as $key => [$label, $type, $default, $description]) {
            $service->appendToSection(GlobalConfig::SECTION, $key, new GlobalSetting(xlt($label), $type, $default, xlt($description)));
        }
    }

    /**
     * The read-only status block, on builds whose GlobalSetting has html_display_section (7.0.x has it; older
     * ones just show the editable settings).
     */
    private function statusSetting(): ?GlobalSetting
    {
        $type = GlobalSetting::class . '::DATA_TYPE_HTML_DISPLAY_SECTION';
        $option = GlobalSetting::class . '::DATA_TYPE_OPTION_RENDER_CALLBACK';
        if (!defined($type) || !defined($option) || !method_exists(GlobalSetting::class, 'addFieldOption')) {
            return null;
        }
        $setting = new GlobalSetting(xlt('Status'), constant($type), '', xlt('What is on, and the SMART clients the module registered (read only).'));
        $status = $this->settingsStatus();
        $setting->addFieldOption(constant($option), static fn($fieldId = '', $field = []): string => $status->html());
        return $setting;
    }

    public function settingsStatus(?ClientRegistry $clients = null): SettingsStatus
    {
        return new SettingsStatus($this->config, self::moduleUrl('public/settings.php'), self::fhirBase(), $clients ?? new OpenEmrClientRegistry());
    }

    public function addTemplatePath(TwigEnvironmentEvent $event): void
    {
        $loader = $event->getTwigEnvironment()->getLoader();
        if ($loader instanceof \Twig\Loader\FilesystemLoader) {
            $loader->prependPath(self::TEMPLATE_DIR);
        }
    }

    public function addDashboardCard(SectionEvent $event): void
    {
        if ($event->getSection() !== 'primary') {
            return;
        }
        $pid = OpenEmrSession::pid();
        if ($pid <= 0) {
            return;
        }
        $csrf = OpenEmrSession::csrfToken();
        $variables = $this->cardController()->cardVariables($pid, $csrf, self::flash(), $this->ehrLaunchUrl($csrf));
        $variables['action_url'] = self::moduleUrl('public/action.php');
        $event->addCard(new CardModel(self::cardOptions($variables, $this->dispatcher)));
    }

    /**
     * The CardModel options. The template extends OpenEMR's patient/card/card_base.html.twig, which draws the
     * title bar and the collapse from the `title`/`id`/`initiallyCollapsed` the dashboard passes for each card.
     *
     * @param array<string, mixed> $variables
     * @return array<string, mixed>
     */
    public static function cardOptions(array $variables, ?EventDispatcherInterface $dispatcher = null): array
    {
        // The dashboard keeps a user's expand/collapse choice under the card id (updateUserVisibilitySetting).
        $collapsed = function_exists('getUserSetting') && (string) \getUserSetting(self::CARD_ID) === '0';
        return [
            'identifier' => self::CARD_ID,
            'title' => xl('Direct sharing'),
            'acl' => ['patients', 'demo'],
            'templateFile' => 'oe-bluebutton-direct/card.html.twig',
            'templateVariables' => $variables,
            'initiallyCollapsed' => $collapsed,
            'add' => false,
            'edit' => false,
            'collapse' => true,
            'dispatcher' => $dispatcher,
        ];
    }

    /**
     * Move the last card action's outcome out of the session, once, at the start of the dashboard request (from
     * openemr.bootstrap.php, before any output: on 7.0.x removing a session value reopens the session, which
     * is impossible once the page has started).
     */
    public static function takeFlash(): void
    {
        if (self::$flash !== null) {
            return;
        }
        try {
            $flash = OpenEmrSession::get(self::FLASH_KEY);
            self::$flash = is_array($flash) ? $flash : [];
            if ($flash !== null) {
                OpenEmrSession::remove(self::FLASH_KEY);
            }
        } catch (\Throwable $e) {
            self::$flash = [];
            error_log('bbdirect: reading the card result failed: ' . get_class($e));
        }
    }

    /** @return array<string, mixed> the outcome taken by takeFlash() */
    public static function flash(): array
    {
        return self::$flash ?? [];
    }

    /** Test hook: forget the taken flash. */
    public static function resetFlash(?array $flash = null): void
    {
        self::$flash = $flash;
    }

    /** Whether this request renders the patient dashboard (the page that shows the card). */
    public static function isDashboardRequest(): bool
    {
        $script = (string) ($_SERVER['SCRIPT_NAME'] ?? ($_SERVER['PHP_SELF'] ?? ''));
        return str_ends_with($script, '/patient_file/summary/demographics.php');
    }

    /**
     * OpenEMR's own EHR launch endpoint (interface/smart/ehr-launch-client.php): it checks the CSRF token, puts
     * the open chart's patient into a SMARTLaunchToken and redirects to the client's launch URI with
     * `iss` and `launch`, which is the sidecar's /smart/launch. '' when the clinician app is not registered.
     */
    public function ehrLaunchUrl(string $csrfToken): string
    {
        if (!$this->config->usesEhrLaunch()) {
            return '';
        }
        return ($GLOBALS['webroot'] ?? '') . '/interface/smart/ehr-launch-client.php?' . http_build_query([
            'intent' => self::EHR_LAUNCH_INTENT,
            'client_id' => $this->config->clinicianClientId,
            'csrf_token' => $csrfToken,
        ], '', '&', PHP_QUERY_RFC3986);
    }

    /** Portal dashboard: "Share with Direct" (listener of the GenericEvent fired by the portal's fireEvent()). */
    public function renderPortalCard(object $event): void
    {
        try {
            echo (new PortalCard($this->config, $this->renderer ?? self::openEmrRenderer()))->html();
        } catch (\Throwable $e) {
            error_log('bbdirect: portal card failed: ' . get_class($e)); // the portal page must still render
        }
    }

    public function cardController(): CardController
    {
        return new CardController(
            $this->client(),
            $this->patients(),
            $this->config,
            static fn(string $token): bool => OpenEmrSession::verifyCsrf($token),
            static fn(): bool => (bool) AclMain::aclCheckCore('patients', 'demo', '', 'write'),
        );
    }

    public function pinger(): ChangePinger
    {
        return $this->pinger ??= new ChangePinger($this->client(), $this->patients());
    }

    /** OpenEMR's event dispatcher (the kernel's), for the module's own pages. */
    public static function eventDispatcher(): EventDispatcherInterface
    {
        $bag = 'OpenEMR\\Core\\OEGlobalsBag';
        if (class_exists($bag) && method_exists($bag, 'getInstance') && method_exists($bag, 'getKernel')) {
            return $bag::getInstance()->getKernel()->getEventDispatcher();
        }
        return $GLOBALS['kernel']->getEventDispatcher();
    }

    public static function moduleUrl(string $path): string
    {
        return ($GLOBALS['webroot'] ?? '') . '/interface/modules/custom_modules/' . self::MODULE_DIR . '/' . $path;
    }

    /** OpenEMR's FHIR base (what ServerConfig::getFhirUrl() gives): the iss of every launch. */
    public static function fhirBase(): string
    {
        $origin = rtrim((string) ($GLOBALS['site_addr_oath'] ?? ''), '/');
        if ($origin === '') {
            return '';
        }
        $site = (string) (OpenEmrSession::get('site_id') ?? 'default');
        return $origin . ($GLOBALS['webroot'] ?? '') . '/apis/' . rawurlencode($site === '' ? 'default' : $site) . '/fhir';
    }

    private static function openEmrRenderer(): ?TemplateRenderer
    {
        return OpenEmrTwigRenderer::available() ? new OpenEmrTwigRenderer(self::TEMPLATE_DIR, $GLOBALS['kernel'] ?? null) : null;
    }

    private function client(): SidecarClient
    {
        return SidecarClient::fromConfig($this->config, $this->http);
    }

    private function patients(): PatientDirectory
    {
        return $this->patients ?? new OpenEmrPatientDirectory();
    }
}
