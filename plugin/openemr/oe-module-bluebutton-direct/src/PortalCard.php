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
 * The event fires inside the row of quick-start tiles, so the card is a tile like its neighbours. Rendered
 * through our Twig template when the portal's Twig container is there, else as the same tile in escaped HTML.
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

    /** @param array<string, string> $v the same tile as the template, built with OpenEMR's escaping functions */
    private function fallback(array $v): string
    {
        return '<a id="bbdirect-portal-card" class="col-lg-2 col-md-4 col-sm-6 col-6 card bg-light pt-2 pb-2 text-center text-decoration-none"'
            . ' href="' . attr($v['launch_url']) . '" rel="noopener" data-window-title="' . attr(xl($v['title'])) . '">'
            . '<span class="h1 card-image"><i class="fa fa-2x fa-share-square text-dark" aria-hidden="true"></i></span>'
            . '<span class="card-body"><span class="btn btn-success d-block w-100 text-light">' . text(xl($v['title'])) . '</span> '
            . '<span class="sr-only">' . text(xl($v['text'])) . '</span></span></a>';
    }
}
