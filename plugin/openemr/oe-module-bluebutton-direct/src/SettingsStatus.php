<?php

/**
 * The read-only block at the top of the settings section: which features are on, and the SMART clients the
 * module registered (ids shown, never editable: they are not GlobalSettings). Rendered by OpenEMR's globals
 * page through a GlobalSetting of type html_display_section (render_callback), where the build has it.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class SettingsStatus
{
    public function __construct(
        private readonly GlobalConfig $config,
        private readonly string $registerUrl,
        private readonly string $fhirBase = '',
        private readonly ?ClientRegistry $clients = null,
    ) {
    }

    /**
     * The three clients: label, client id ('' = not registered), state for the administrator.
     *
     * @return list<array{0: string, 1: string, 2: string, 3: string}> field id, label, client id, state
     */
    public function clients(): array
    {
        $c = $this->config;
        $rows = [
            ['bbdirect-clinician-client-id', 'Clinician app client id (sidecar web.smart_client_id)', $c->clinicianClientId],
            ['bbdirect-patient-client-id', 'Patient app client id (sidecar web.smart_patient_client_id)', $c->patientClientId],
            ['bbdirect-backend-client-id', 'Sidecar backend client id (SMART Backend Services)', $c->backendClientId],
        ];
        $out = [];
        foreach ($rows as [$field, $label, $id]) {
            $out[] = [$field, $label, $id, $this->clientState($id)];
        }
        return $out;
    }

    private function clientState(string $id): string
    {
        if ($id === '') {
            return 'not registered';
        }
        if ($this->clients === null || $this->clients->unsupportedReason() !== null) {
            return 'unknown';
        }
        try {
            if (!$this->clients->exists($id)) {
                return 'not registered';
            }
            return $this->clients->isEnabled($id) ? 'registered, enabled' : 'registered, disabled';
        } catch (\Throwable $e) {
            return 'unknown';
        }
    }

    /** @return list<array{0: string, 1: bool, 2: string}> feature, on?, why */
    public function features(): array
    {
        $c = $this->config;
        $api = $c->isConfigured();
        $smart = $c->usesEhrLaunch();
        return [
            ['Sidecar REST API (server to server)', $api, $api ? $c->sidecarUrl : 'set the sidecar URL and API key'],
            ['Direct sharing card on the patient dashboard', $c->cardEnabled && ($api || $smart),
                $c->cardEnabled ? ($smart ? 'opens the sidecar pages by SMART EHR launch' : 'Add & Send form') : 'turned off'],
            ['SMART EHR launch of the clinician pages', $smart,
                match (true) {
                    $smart => 'clinician app registered',
                    $c->clinicianClientId === '' => 'clinician app not registered',
                    default => 'registered; turn on once the sidecar has the clinician client id',
                }],
            ['Share with Direct card in the patient portal', $c->portalEnabled && $c->patientLaunchUrl() !== '',
                $c->portalEnabled ? ($c->patientLaunchUrl() ?: 'set the sidecar public URL') : 'turned off'],
            ['Change pings to the sidecar', $c->pingsEnabled && $api, $c->pingsEnabled ? ($api ? 'on save' : 'needs the REST API') : 'turned off'],
        ];
    }

    public function html(): string
    {
        $rows = '';
        foreach ($this->features() as [$feature, $on, $why]) {
            $rows .= '<tr><td>' . text(xl($feature)) . '</td><td>'
                . ($on ? '<span class="badge badge-success">' . text(xl('on')) . '</span>'
                    : '<span class="badge badge-secondary">' . text(xl('off')) . '</span>')
                . '</td><td>' . text($why) . '</td></tr>';
        }
        $ids = '';
        foreach ($this->clients() as [$field, $label, $id, $state]) {
            $ids .= '<div class="form-group"><label for="' . attr($field) . '">' . text(xl($label)) . '</label>'
                . '<input id="' . attr($field) . '" class="form-control" type="text" readonly value="' . attr($id) . '">'
                . '<small class="bbdirect-client-state" data-state="' . attr($state) . '">' . text(xl($state)) . '</small></div>';
        }
        $hints = '<p>' . text(xl('Give the sidecar the clinician app client id as web.smart_client_id, and the backend client id as the client id of its SMART Backend Services connection to this FHIR server')) . '</p>';
        if ($this->fhirBase !== '') {
            $hints .= '<p>' . text(xl('The sidecar web.smart_iss must be this FHIR base')) . ': <code>' . text($this->fhirBase) . '</code></p>';
        }
        $note = $this->config->registrationNote !== ''
            ? '<p class="alert alert-info" role="status">' . text($this->config->registrationNote) . '</p>' : '';
        return '<div id="bbdirect-status"><table class="table table-sm"><caption>' . text(xl('Blue Button Direct features'))
            . '</caption><tbody>' . $rows . '</tbody></table>' . $note . $ids . $hints
            . '<a class="btn btn-secondary" href="' . attr($this->registerUrl) . '">' . text(xl('Register the SMART apps')) . '</a></div>';
    }
}
