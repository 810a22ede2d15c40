<?php

/**
 * The "Direct sharing" card on the patient dashboard: its data, and its two actions (Add & Send, Stop sending).
 *
 * The clinician flow of the Blue Button guide: the patient gives consent (in person, or on a signed clipboard
 * form), the clinician enters the Direct address, ticks "Always send" when the patient wants every update, and
 * presses Add & Send. Checks here are the EMR's (CSRF, ACL, attestation); the address itself is checked by the
 * sidecar (syntax, certificate discovery, trust) and its specific error is shown next to the field.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class CardController
{
    public const CONSENT_METHODS = ['in_person' => 'In person', 'clipboard' => 'Signed clipboard form'];

    /**
     * @param callable(string): bool $csrfValid checks the posted CSRF token (CsrfUtils::verifyCsrfToken)
     * @param callable(): bool $mayShare ACL check for the current user (patients/demo write)
     */
    public function __construct(
        private readonly SidecarClient $client,
        private readonly PatientDirectory $patients,
        private readonly GlobalConfig $config,
        private $csrfValid,
        private $mayShare,
    ) {
    }

    /**
     * Variables for templates/oe-bluebutton-direct/card.html.twig.
     *
     * @param array<string, mixed> $flash the result of the last action, if any
     * @param string $launchUrl OpenEMR's EHR launch of the sidecar pages ('' = use the form here)
     * @return array<string, mixed>
     */
    public function cardVariables(int $pid, string $csrfToken, array $flash = [], string $launchUrl = ''): array
    {
        $vars = [
            'configured' => $this->config->isConfigured(),
            'may_share' => ($this->mayShare)(),
            'csrf_token' => $csrfToken,
            'pid' => $pid,
            'authorizations' => [],
            'error' => null,
            'flash' => $flash,
            'prefill_address' => $flash['values']['address'] ?? ($this->patients->directAddress($pid) ?? ''),
            'consent_methods' => self::CONSENT_METHODS,
            'launch_url' => $launchUrl,
        ];
        if (!$vars['configured']) {
            return $vars;
        }
        $patientId = $this->patients->fhirId($pid);
        if ($patientId === null) {
            $vars['error'] = 'This patient has no FHIR id yet.';
            return $vars;
        }
        try {
            $vars['authorizations'] = array_map([$this, 'present'], $this->client->listAuthorizations($patientId));
        } catch (SidecarException $e) {
            $vars['error'] = $e->getMessage();
        }
        return $vars;
    }

    /**
     * Handle a card form post. Never throws: every failure becomes an ActionResult for the clinician.
     *
     * @param array<string, mixed> $post
     */
    public function handle(array $post, int $pid, string $userId): ActionResult
    {
        $values = [
            'address' => trim((string) ($post['address'] ?? '')),
            'always' => !empty($post['always']),
            'consent_method' => (string) ($post['consent_method'] ?? ''),
            'attestation' => !empty($post['attestation']),
        ];
        if (!($this->csrfValid)((string) ($post['csrf_token_form'] ?? ''))) {
            return new ActionResult(false, 'Your session expired. Please reload the page and try again.', 'csrf', null, $values);
        }
        if (!($this->mayShare)()) {
            return new ActionResult(false, 'You are not allowed to share this patient\'s record.', 'forbidden', null, $values);
        }
        $patientId = $this->patients->fhirId($pid);
        if ($patientId === null) {
            return new ActionResult(false, 'This patient has no FHIR id yet.', 'no_patient', null, $values);
        }
        $action = (string) ($post['action'] ?? '');
        try {
            return match ($action) {
                'add_send' => $this->addAndSend($patientId, $userId, $values),
                'stop' => $this->stop($patientId, (string) ($post['authorization_id'] ?? ''), $userId, $values),
                default => new ActionResult(false, 'Unknown action.', 'bad_request', null, $values),
            };
        } catch (SidecarException $e) {
            // The sidecar names the field it refuses (a Direct address problem is always `address`); an outage
            // or any other error is shown above the form, and nothing was saved either way.
            return new ActionResult(false, $e->getMessage(), $e->errorCode, $action === 'add_send' ? $e->field : null, $values);
        }
    }

    /** @param array<string, string|bool> $values */
    private function addAndSend(string $patientId, string $userId, array $values): ActionResult
    {
        if ($values['address'] === '') {
            return new ActionResult(false, 'Enter the Direct address the patient gave you.', 'bad_address', 'address', $values);
        }
        if (!array_key_exists((string) $values['consent_method'], self::CONSENT_METHODS)) {
            return new ActionResult(false, 'Choose how the patient gave consent.', 'consent_method', 'consent_method', $values);
        }
        if (!$values['attestation']) {
            return new ActionResult(false, 'Confirm that the patient asked for this sharing.', 'attestation', 'attestation', $values);
        }
        $authorization = $this->client->createAuthorization([
            'patient_id' => $patientId,
            'address' => (string) $values['address'],
            'kind' => $values['always'] ? 'always' : 'once',
            'created_by' => ['type' => 'clinician', 'id' => $userId],
            'consent_method' => (string) $values['consent_method'],
            // The sidecar keeps the attestation as text in its audit trail: who confirmed what, and how.
            'attestation' => sprintf(
                'Clinician %s confirmed that the patient asked for their record to be sent to %s (%s).',
                $userId,
                (string) $values['address'],
                self::CONSENT_METHODS[(string) $values['consent_method']],
            ),
            'payload' => ['type' => 'entire_record'],
            'send_now' => true,
        ]);
        $what = $values['always'] ? 'now and whenever the record changes' : 'once';
        $address = (string) ($authorization['address'] ?? $values['address']);
        return new ActionResult(true, "Sharing with $address set up: the record is being sent $what. The delivery state shows in the list below.", null, null, []);
    }

    /**
     * Revoke one authorization, but only one of the patient whose chart is open: the posted id is checked
     * against the sidecar's record of it before anything is revoked.
     *
     * @param array<string, string|bool> $values
     */
    private function stop(string $patientId, string $authorizationId, string $userId, array $values): ActionResult
    {
        if ($authorizationId === '') {
            return new ActionResult(false, 'Which sharing should stop?', 'bad_request', null, $values);
        }
        try {
            $authorization = $this->client->getAuthorization($authorizationId);
        } catch (SidecarException $e) {
            if ($e->status === 404) {
                return new ActionResult(false, 'This sharing does not exist (any more). Nothing was stopped.', 'not_found', null, $values);
            }
            throw $e;
        }
        if (strtolower((string) ($authorization['patient_id'] ?? '')) !== strtolower($patientId)) {
            return new ActionResult(false, 'This sharing belongs to another patient, not to the chart that is open. Nothing was stopped.', 'wrong_patient', null, $values);
        }
        $this->client->revoke($authorizationId, $userId);
        return new ActionResult(true, 'Sending stopped. Nothing more will be sent to this address.');
    }

    /**
     * @param array<string, mixed> $authorization
     * @return array<string, mixed>
     */
    public const STATES = ['queued' => 'Queued', 'building' => 'Preparing the message', 'sending' => 'Sending',
        'retrying' => 'Retrying', 'sent' => 'Sent (waiting for the recipient)', 'processed' => 'Delivered',
        'dispatched' => 'Delivered', 'failed' => 'Failed', 'cancelled' => 'Cancelled',
        'skipped' => 'Nothing new to send'];

    /**
     * One row of the card, from the sidecar's Authorization (fhir_bridge/api/serialize.py): the delivery state is
     * its `latest_transmission`, trust its `recipient_trusted` (null = not checked: no badge).
     *
     * @param array<string, mixed> $authorization
     * @return array<string, mixed>
     */
    public function present(array $authorization): array
    {
        $last = $authorization['latest_transmission'] ?? null;
        $state = is_array($last) ? (string) ($last['state'] ?? '') : '';
        $reason = is_array($last) && is_array($last['reason'] ?? null) ? (string) ($last['reason']['message'] ?? '') : '';
        $when = is_array($last) ? (string) ($last['dispatched_at'] ?? $last['processed_at'] ?? $last['sent_at'] ?? $last['updated_at'] ?? '') : '';
        return [
            'id' => (string) ($authorization['id'] ?? ''),
            'address' => (string) ($authorization['address'] ?? ''),
            'kind' => ($authorization['kind'] ?? '') === 'always' ? 'Always' : 'Once',
            'active' => ($authorization['status'] ?? 'active') === 'active' && empty($authorization['revoked_at']),
            'state' => $state,
            'state_label' => self::STATES[$state] ?? $state,
            'when' => $when,
            'reason' => $reason,
            'untrusted' => ($authorization['recipient_trusted'] ?? null) === false,
        ];
    }
}
