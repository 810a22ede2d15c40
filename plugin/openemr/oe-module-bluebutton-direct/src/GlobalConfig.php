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
    public const PUBLIC_URL = 'bbdirect_public_url';
    public const ENABLE_CARD = 'bbdirect_enable_card';
    public const ENABLE_PORTAL = 'bbdirect_enable_portal';
    public const ENABLE_PINGS = 'bbdirect_enable_pings';
    public const ENABLE_SMART = 'bbdirect_enable_smart';
    public const PATIENT_LAUNCH_URL = 'bbdirect_patient_launch_url';
    /** Client id of the sidecar's SMART Backend Services client (the sidecar config names the same id). */
    public const BACKEND_CLIENT_ID = 'bbdirect_backend_client_id';
    public const DEFAULT_BACKEND_CLIENT_ID = 'bbdirect-sidecar';
    /** Environment fallback of every setting: the name the OpenEMR Docker image uses for presets. */
    public const ENV_PREFIX = 'OPENEMR_SETTING_';
    /** Read-only status block of the settings section (features on, registered SMART clients). */
    public const STATUS = 'bbdirect_status';
    /**
     * Written by SmartClientRegistrar, never typed by a person: these are rows of the `globals` table but not
     * GlobalSettings, so the globals page cannot edit them; the STATUS block shows them read-only.
     */
    public const CLINICIAN_CLIENT_ID = 'bbdirect_smart_clinician_client_id';
    public const PATIENT_CLIENT_ID = 'bbdirect_smart_patient_client_id';
    public const REGISTRATION_NOTE = 'bbdirect_smart_registration_note';

    public function __construct(
        public readonly string $sidecarUrl,
        public readonly string $apiKey,
        public readonly bool $cardEnabled = true,
        public readonly bool $portalEnabled = true,
        public readonly bool $pingsEnabled = true,
        public readonly string $publicUrl = '',
        public readonly string $patientLaunchUrlSetting = '',
        public readonly bool $smartEnabled = false,
        public readonly string $clinicianClientId = '',
        public readonly string $patientClientId = '',
        public readonly string $registrationNote = '',
        public readonly string $backendClientId = self::DEFAULT_BACKEND_CLIENT_ID,
    ) {
    }

    /**
     * The settings of the running OpenEMR. OpenEMR keeps an "encrypted" global encrypted in $GLOBALS too
     * (callers decrypt, as the phiMail code does with phimail_password), so the API key goes through CryptoGen.
     */
    public static function fromOpenEmr(): self
    {
        return self::fromGlobals(self::withEnvironment($GLOBALS, self::environment()), self::openEmrDecrypt());
    }

    /**
     * Decrypts with OpenEMR's CryptoGen, but only a value that is encrypted (cryptCheckStandard: a known
     * version prefix): a plain preset key would make decryptStandard log "Decryption is not working" on every
     * request.
     *
     * @return (callable(string): mixed)|null
     */
    public static function openEmrDecrypt(): ?callable
    {
        $crypto = 'OpenEMR\\Common\\Crypto\\CryptoGen';
        if (!class_exists($crypto)) {
            return null;
        }
        return static function (string $value) use ($crypto): mixed {
            $gen = new $crypto();
            if (method_exists($gen, 'cryptCheckStandard') && !$gen->cryptCheckStandard($value)) {
                return $value;
            }
            return $gen->decryptStandard($value);
        };
    }

    /**
     * The module's settings from the environment (OPENEMR_SETTING_<name>, the names the OpenEMR Docker image
     * uses for presets).
     *
     * @return array<string, string>
     */
    public static function environment(): array
    {
        $values = [];
        foreach (array_keys(self::definitions()) as $key) {
            $value = getenv(self::ENV_PREFIX . $key);
            if (is_string($value)) {
                $values[$key] = $value;
            }
        }
        return $values;
    }

    /**
     * A setting without a `globals` row (nobody saved the globals page, the module wrote no defaults yet) falls
     * back to the environment; a row always wins, even an empty one (an administrator cleared it).
     *
     * @param array<string, mixed> $globals
     * @param array<string, string> $environment
     * @return array<string, mixed>
     */
    public static function withEnvironment(array $globals, array $environment): array
    {
        foreach ($environment as $key => $value) {
            if (!array_key_exists($key, $globals)) {
                $globals[$key] = $value;
            }
        }
        return $globals;
    }

    /**
     * The value the module writes for each setting that has no row yet (on install and enable): the
     * environment's preset, else the definition's default.
     *
     * @param array<string, string> $environment
     * @return array<string, string>
     */
    public static function initialValues(array $environment): array
    {
        $values = [];
        foreach (self::definitions() as $key => [, , $default]) {
            $values[$key] = $environment[$key] ?? $default;
        }
        return $values;
    }

    /**
     * @param array<string, mixed> $globals OpenEMR's $GLOBALS (or any array with the same keys)
     * @param (callable(string): mixed)|null $decrypt decrypts the API key; a value it cannot decrypt is used as
     *        is (a deployment can preset it in plain text, e.g. OPENEMR_SETTING_bbdirect_api_key in Docker)
     */
    public static function fromGlobals(array $globals, ?callable $decrypt = null): self
    {
        $flag = static fn(string $key, bool $default): bool =>
            array_key_exists($key, $globals) ? (bool) $globals[$key] : $default;
        $text = static fn(string $key): string => trim((string) ($globals[$key] ?? ''));
        $apiKey = $text(self::API_KEY);
        if ($decrypt !== null && $apiKey !== '') {
            try {
                $plain = $decrypt($apiKey);
            } catch (\Throwable $e) {
                $plain = false;
            }
            $apiKey = is_string($plain) && $plain !== '' ? $plain : $apiKey;
        }
        return new self(
            rtrim($text(self::SIDECAR_URL), '/'),
            $apiKey,
            $flag(self::ENABLE_CARD, true),
            $flag(self::ENABLE_PORTAL, true),
            $flag(self::ENABLE_PINGS, true),
            rtrim($text(self::PUBLIC_URL), '/'),
            $text(self::PATIENT_LAUNCH_URL),
            // Off until an administrator has given the sidecar the clinician client id (web.smart_client_id):
            // before that, a launch would reach the sidecar with a client it does not know.
            $flag(self::ENABLE_SMART, false),
            $text(self::CLINICIAN_CLIENT_ID),
            $text(self::PATIENT_CLIENT_ID),
            $text(self::REGISTRATION_NOTE),
            $text(self::BACKEND_CLIENT_ID) !== '' ? $text(self::BACKEND_CLIENT_ID) : self::DEFAULT_BACKEND_CLIENT_ID,
        );
    }

    /** The server-to-server REST API can be used (card list, Add & Send, pings). */
    public function isConfigured(): bool
    {
        return $this->sidecarUrl !== '' && $this->apiKey !== '';
    }

    /** The card opens the sidecar's clinician pages through OpenEMR's SMART EHR launch. */
    public function usesEhrLaunch(): bool
    {
        return $this->smartEnabled && $this->clinicianClientId !== '';
    }

    /** The sidecar's EHR launch URL (SMART `initiate_login_uri`), or '' when the public URL is not set. */
    public function sidecarLaunchUri(): string
    {
        return self::isWebUrl($this->publicUrl) ? $this->publicUrl . '/smart/launch' : '';
    }

    /** The sidecar's OAuth redirect URI. */
    public function sidecarRedirectUri(): string
    {
        return self::isWebUrl($this->publicUrl) ? $this->publicUrl . '/smart/callback' : '';
    }

    /**
     * Where the portal card sends the patient: the sidecar's standalone patient launch (`/smart/start`, which
     * signs in at the sidecar's configured `smart_iss`, i.e. this OpenEMR's FHIR base), unless an explicit URL
     * was set. '' when neither is a http(s) URL.
     */
    public function patientLaunchUrl(): string
    {
        if ($this->patientLaunchUrlSetting !== '') {
            return self::isWebUrl($this->patientLaunchUrlSetting) ? $this->patientLaunchUrlSetting : '';
        }
        return self::isWebUrl($this->publicUrl) ? $this->publicUrl . '/smart/start' : '';
    }

    /**
     * An absolute http(s) URL with a host and no whitespace or control characters. (Quotes and angle brackets
     * are harmless here: every output escapes them; a javascript: or data: URL never gets through.)
     */
    public static function isWebUrl(string $url): bool
    {
        return (bool) preg_match('~^https?://[^\s/?#]+~i', $url) && !preg_match('~[\x00-\x20\x7f]~', $url);
    }

    /**
     * The settings OpenEMR shows in its globals page: key => [label, type, default, description].
     *
     * @return array<string, array{0: string, 1: string, 2: string, 3: string}>
     */
    public static function definitions(): array
    {
        return [
            self::SIDECAR_URL => ['Sidecar URL (server to server)', 'text', 'http://bbdirect:8080',
                'Base URL OpenEMR uses to call the Blue Button Direct sidecar REST API (/api/v1). With the API key it turns on the card list, Add & Send, Stop sending and the change pings.'],
            self::API_KEY => ['Sidecar API key', 'encrypted', '',
                'API key the module sends to the sidecar (Authorization: Bearer). One of the sidecar\'s server.api_keys.'],
            self::PUBLIC_URL => ['Sidecar public URL (browser)', 'text', '',
                'Address of the sidecar pages as browsers reach them, e.g. https://bbdirect.example.org. Used for the SMART launch URL ({public}/smart/launch), the redirect URI ({public}/smart/callback) and the portal card ({public}/smart/start).'],
            self::ENABLE_CARD => ['Show the Direct sharing card', 'bool', '1',
                'Patient dashboard card: the sharing list with Add & Send and Stop sending, or "Open sharing pages" when the SMART EHR launch is on.'],
            self::ENABLE_SMART => ['Open the sharing pages by SMART EHR launch', 'bool', '0',
                'Turn on once the sidecar knows the registered clinician client id (its web.smart_client_id): the card then links to the sidecar pages through OpenEMR\'s EHR launch instead of showing the server-to-server form.'],
            self::ENABLE_PORTAL => ['Show Share with Direct in the portal', 'bool', '1',
                'Patient portal dashboard card that opens the sidecar patient pages (SMART standalone launch; the patient signs in with the portal credentials).'],
            self::ENABLE_PINGS => ['Tell the sidecar when a record changes', 'bool', '1',
                'On patient and service saves, ask the sidecar to look at the patient (POST /api/v1/patients/{id}/changed; never blocks the save).'],
            self::PATIENT_LAUNCH_URL => ['Patient pages URL (override)', 'text', '',
                'Optional: where the portal card links. Empty = {public URL}/smart/start.'],
            self::BACKEND_CLIENT_ID => ['Sidecar backend client id', 'text', self::DEFAULT_BACKEND_CLIENT_ID,
                'Client id of the sidecar\'s SMART Backend Services client (reads OpenEMR\'s FHIR API with system/ scopes). The module registers it with the sidecar\'s public keys ({sidecar URL}/.well-known/jwks.json); give the sidecar the same id.'],
        ];
    }
}
