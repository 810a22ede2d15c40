<?php

/**
 * Wires the module into OpenEMR's events. Every listener is cheap until its event fires, and none of them
 * can break the page that fired it: errors are caught and shown (card) or counted (pings).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

use OpenEMR\Common\Acl\AclMain;
use OpenEMR\Common\Csrf\CsrfUtils;
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
    public const TEMPLATE_DIR = __DIR__ . '/../templates';
    /** OpenEMR fires this from portal/home.php (RenderEvent::EVENT_DASHBOARD_INJECT_CARD). */
    public const PORTAL_CARD_EVENT = 'home.dashboard.inject.card';

    private ?ChangePinger $pinger = null;

    public function __construct(
        private readonly EventDispatcherInterface $dispatcher,
        private readonly GlobalConfig $config,
        private readonly ?PatientDirectory $patients = null,
        private readonly ?HttpTransport $http = null,
    ) {
    }

    public function subscribeToEvents(): void
    {
        $this->dispatcher->addListener(GlobalsInitializedEvent::EVENT_HANDLE, [$this, 'addGlobalSettings']);
        $this->dispatcher->addListener(TwigEnvironmentEvent::EVENT_CREATED, [$this, 'addTemplatePath']);
        if (!$this->config->isConfigured()) {
            return; // settings page only, until an administrator points the module at a sidecar
        }
        if ($this->config->cardEnabled) {
            $this->dispatcher->addListener(SectionEvent::EVENT_HANDLE, [$this, 'addDashboardCard']);
        }
        if ($this->config->portalEnabled) {
            $this->dispatcher->addListener(self::PORTAL_CARD_EVENT, [$this, 'renderPortalCard']);
        }
        if ($this->config->pingsEnabled) {
            $this->dispatcher->addListener(PatientUpdatedEvent::EVENT_HANDLE, [$this->pinger(), 'onPatientUpdated']);
            $this->dispatcher->addListener(ServiceSaveEvent::EVENT_POST_SAVE, [$this->pinger(), 'onServiceSaved']);
        }
    }

    public function addGlobalSettings(GlobalsInitializedEvent $event): void
    {
        $service = $event->getGlobalsService();
        $service->createSection(GlobalConfig::SECTION, 'Report');
        foreach (GlobalConfig::definitions() as $key => [$label, $type, $default, $description]) {
            $service->appendToSection(GlobalConfig::SECTION, $key, new GlobalSetting(xlt($label), $type, $default, xlt($description)));
        }
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
        $pid = (int) ($_SESSION['pid'] ?? ($GLOBALS['pid'] ?? 0));
        if ($pid <= 0) {
            return;
        }
        $flash = $_SESSION['bbdirect_flash'] ?? [];
        unset($_SESSION['bbdirect_flash']);
        $variables = $this->cardController()->cardVariables($pid, CsrfUtils::collectCsrfToken(), is_array($flash) ? $flash : []);
        $variables['action_url'] = ($GLOBALS['webroot'] ?? '') . '/interface/modules/custom_modules/oe-module-bluebutton-direct/public/action.php';
        $event->addCard(new CardModel([
            'identifier' => self::CARD_ID,
            'title' => xl('Direct sharing'),
            'acl' => ['patients', 'demo'],
            'templateFile' => 'oe-bluebutton-direct/card.html.twig',
            'templateVariables' => $variables,
            'add' => false,
            'edit' => false,
            'collapse' => true,
            'dispatcher' => $this->dispatcher,
        ]));
    }

    /** Portal dashboard: a card that opens the patient flow (SMART standalone launch of the sidecar pages). */
    public function renderPortalCard(object $event): void
    {
        $url = $this->config->patientLaunchUrl;
        if ($url === '' || !preg_match('#^https?://#', $url)) {
            return;
        }
        echo '<div class="card mb-3" id="bbdirect-portal-card"><div class="card-body">'
            . '<h5 class="card-title">' . text(xl('Share with Direct')) . '</h5>'
            . '<p class="card-text">' . text(xl('Send your health record to a doctor, an app or a caregiver by secure Direct message, once or whenever it changes.')) . '</p>'
            . '<a class="btn btn-primary" href="' . attr($url) . '">' . text(xl('Share with Direct')) . '</a>'
            . '</div></div>';
    }

    public function cardController(): CardController
    {
        return new CardController(
            $this->client(),
            $this->patients(),
            $this->config,
            static fn(string $token): bool => CsrfUtils::verifyCsrfToken($token),
            static fn(): bool => (bool) AclMain::aclCheckCore('patients', 'demo', '', 'write'),
        );
    }

    public function pinger(): ChangePinger
    {
        return $this->pinger ??= new ChangePinger($this->client(), $this->patients());
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
