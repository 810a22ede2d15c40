<?php

/**
 * Turns OpenEMR save events into "look at this patient" pings to the sidecar.
 *
 * OpenEMR has no FHIR Subscription, so these events are the fastest change signal (the sidecar also polls:
 * many legacy screens write SQL directly and fire no event). Pings are collected during the request and sent
 * after the response is finished (deduplicated per patient), and every failure is swallowed: a down sidecar
 * must never break or slow a clinician's save. Nothing about the patient but the id leaves this class.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

use OpenEMR\Events\Patient\PatientUpdatedEvent;
use OpenEMR\Events\Services\ServiceSaveEvent;

final class ChangePinger
{
    /** @var array<string, true> FHIR patient ids to ping at the end of the request */
    private array $pending = [];
    private bool $scheduled = false;
    private int $failures = 0;

    /** @param callable(callable): void|null $defer runs the flush later (default: after the response) */
    public function __construct(
        private readonly SidecarClient $client,
        private readonly PatientDirectory $patients,
        private $defer = null,
    ) {
    }

    public function onPatientUpdated(PatientUpdatedEvent $event): void
    {
        $data = $event->getNewPatientData();
        $before = $event->getDataBeforeUpdate();
        $this->queue($data['pid'] ?? ($before['pid'] ?? null), $data['uuid'] ?? null);
    }

    /** demographics_save.php's PatientUpdatedEventAux (patient.updated.aux): the pid and the posted form. */
    public function onPatientUpdatedAux(object $event): void
    {
        $data = method_exists($event, 'getUpdatedPatientData') ? $event->getUpdatedPatientData() : [];
        $this->queue(is_array($data) ? ($data['pid'] ?? null) : null, null);
    }

    public function onServiceSaved(ServiceSaveEvent $event): void
    {
        $data = $event->getSaveData();
        $this->queue($data['pid'] ?? ($data['patient_id'] ?? null), $data['puuid'] ?? null);
    }

    /** @return list<string> patient ids waiting to be sent */
    public function pending(): array
    {
        return array_keys($this->pending);
    }

    public function failures(): int
    {
        return $this->failures;
    }

    /** Send every pending ping now; failures are counted, never thrown. */
    public function flush(): void
    {
        $ids = array_keys($this->pending);
        $this->pending = [];
        $this->scheduled = false;
        if (function_exists('fastcgi_finish_request')) {
            fastcgi_finish_request(); // the user already has the page; the pings cost them nothing
        }
        foreach ($ids as $id) {
            try {
                $this->client->pingChanged($id);
            } catch (\Throwable $e) {
                $this->failures++;
                error_log('bbdirect: change ping failed: ' . get_class($e)); // no PHI: class name only
            }
        }
    }

    private function queue(mixed $pid, mixed $uuid): void
    {
        try {
            $id = is_string($uuid) && preg_match('/^[0-9a-f-]{36}$/i', $uuid) ? strtolower($uuid) : null;
            if ($id === null && is_numeric($pid)) {
                $id = $this->patients->fhirId((int) $pid);
            }
        } catch (\Throwable $e) {
            $this->failures++;
            return;
        }
        if ($id === null) {
            return;
        }
        $this->pending[$id] = true;
        if (!$this->scheduled) {
            $this->scheduled = true;
            $defer = $this->defer ?? 'register_shutdown_function';
            $defer([$this, 'flush']);
        }
    }
}
