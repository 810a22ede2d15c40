<?php

/**
 * The patient portal's "Share with Direct" card.
 *
 * OpenEMR 7.0.x fires OpenEMR\Events\PatientPortal\RenderEvent::EVENT_DASHBOARD_INJECT_CARD
 * ("home.dashboard.inject.card") from templates/portal/home.html.twig through the Twig function
 * fireEvent(), which dispatches a Symfony GenericEvent and captures what listeners echo into the quick-start
 * card row. The card links to the sidecar's standalone patient launch: the patient signs in at OpenEMR's
 * authorization server with the portal credentials (the portal has no SMART launcher of its own).
 *
 * Rendered through our Twig template when the portal's Twig container is there, else as escaped HTML.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class PortalCard
{
    public const TEMPLATE = 'oe-bluebutton-direct/portal-card.html.twig';

    public function __construct(private readonly GlobalConfig $config, private readonly ?TemplateRenderer $renderer = null)
    {
    }

    /** The card's HTML, or '' when there is nowhere safe to send the patient. */
    public function html(): string
    {
        $url = $this->config->patientLaunchUrl();
        if ($url === '') {
            return '';
        }
        $variables = [
            'launch_url' => $url,
            'title' => 'Share with Direct',
            'text' => 'Send your health record to a doctor, an app or a caregiver by secure Direct message, once or whenever it changes.',
        ];
        if ($this->renderer !== null) {
            try {
                return $this->renderer->render(self::TEMPLATE, $variables);
            } catch (\Throwable $e) {
                error_log('bbdirect: portal card template failed: ' . get_class($e)); // then the plain card below
            }
        }
        return $this->fallback($variables);
    }

    /** @param array<string, string> $v */
    private function fallback(array $v): string
    {
        return '<div class="card d-flex mr-1 mb-1" id="bbdirect-portal-card"><div class="card-body">'
            . '<h4 class="card-title"><i class="fa fa-share-square mr-1" aria-hidden="true"></i>' . text(xl($v['title'])) . '</h4>'
            . '<p class="card-text">' . text(xl($v['text'])) . '</p>'
            . '<a class="btn btn-success" rel="noopener" href="' . attr($v['launch_url']) . '">' . text(xl($v['title'])) . '</a>'
            . '</div></div>';
    }
}
