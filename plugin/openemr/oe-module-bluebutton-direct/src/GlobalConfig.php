<?php

/**
 * The module's settings, read once per request from OpenEMR globals (Admin → Config → Blue Button Direct).
 *
 * One small value object so the rest of the module never reads $GLOBALS directly: tests build it from an
 * array, and a missing setting has one obvious default here.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class GlobalConfig
{
    public const SECTION = 'Blue Button Direct';
    public const SIDECAR_URL = 'bbdirect_sidecar_url';
    public const API_KEY = 'bbdirect_api_key';
    public const ENABLE_CARD = 'bbdirect_enable_card';
    public const ENABLE_PORTAL = 'bbdirect_enable_portal';
    public const ENABLE_PINGS = 'bbdirect_enable_pings';
    public const CLINICIAN_LAUNCH_URL = 'bbdirect_clinician_launch_url';
    public const PATIENT_LAUNCH_URL = 'bbdirect_patient_launch_url';

    public function __construct(
        public readonly string $sidecarUrl,
        public readonly string $apiKey,
        public readonly bool $cardEnabled = true,
        public readonly bool $portalEnabled = true,
        public readonly bool $pingsEnabled = true,
        public readonly string $clinicianLaunchUrl = '',
        public readonly string $patientLaunchUrl = '',
    ) {
    }

    /** @param array<string, mixed> $globals OpenEMR's $GLOBALS (or any array with the same keys) */
    public static function fromGlobals(array $globals): self
    {
        $flag = static fn(string $key, bool $default): bool =>
            array_key_exists($key, $globals) ? (bool) $globals[$key] : $default;
        return new self(
            rtrim((string) ($globals[self::SIDECAR_URL] ?? ''), '/'),
            (string) ($globals[self::API_KEY] ?? ''),
            $flag(self::ENABLE_CARD, true),
            $flag(self::ENABLE_PORTAL, true),
            $flag(self::ENABLE_PINGS, true),
            (string) ($globals[self::CLINICIAN_LAUNCH_URL] ?? ''),
            (string) ($globals[self::PATIENT_LAUNCH_URL] ?? ''),
        );
    }

    public function isConfigured(): bool
    {
        return $this->sidecarUrl !== '' && $this->apiKey !== '';
    }

    /**
     * The settings OpenEMR shows in its globals page: key => [label, type, default, description].
     *
     * @return array<string, array{0: string, 1: string, 2: string, 3: string}>
     */
    public static function definitions(): array
    {
        return [
            self::SIDECAR_URL => ['Sidecar URL', 'text', 'http://bbdirect:8080',
                'Base URL of the Blue Button Direct sidecar (server to server).'],
            self::API_KEY => ['Sidecar API key', 'encrypted', '',
                'API key the module uses to call the sidecar (Authorization: Bearer).'],
            self::ENABLE_CARD => ['Show the Direct sharing card', 'bool', '1',
                'Patient dashboard card with Add & Send and Stop sending.'],
            self::ENABLE_PORTAL => ['Show Share with Direct in the portal', 'bool', '1',
                'Patient portal card that opens the sharing pages.'],
            self::ENABLE_PINGS => ['Tell the sidecar when a record changes', 'bool', '1',
                'On patient and service saves, ask the sidecar to look at the patient (never blocks the save).'],
            self::CLINICIAN_LAUNCH_URL => ['Clinician pages (SMART EHR launch)', 'text', '',
                'Optional: open the sidecar clinician pages through a SMART EHR launch instead of the card form.'],
            self::PATIENT_LAUNCH_URL => ['Patient pages (SMART standalone launch)', 'text', '',
                'URL of the sidecar patient launch used by the portal card.'],
        ];
    }
}
