<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Common\Crypto\CryptoGen;
use OpenEMR\Modules\BlueButtonDirect\GlobalConfig;
use PHPUnit\Framework\TestCase;

final class GlobalConfigTest extends TestCase
{
    protected function tearDown(): void
    {
        unset($GLOBALS[GlobalConfig::API_KEY], $GLOBALS[GlobalConfig::SIDECAR_URL]);
    }

    public function testTheEncryptedApiKeyIsDecrypted(): void
    {
        $GLOBALS[GlobalConfig::SIDECAR_URL] = 'http://bbdirect:8080';
        $GLOBALS[GlobalConfig::API_KEY] = (new CryptoGen())->encryptStandard('the-key');
        $config = GlobalConfig::fromOpenEmr();
        $this->assertSame('the-key', $config->apiKey);
        $this->assertTrue($config->isConfigured());
    }

    public function testAPlainPresetKeyIsUsedAsIsWithoutADecryptionError(): void
    {
        CryptoGen::$failures = 0;
        $GLOBALS[GlobalConfig::API_KEY] = 'plain-preset-key'; // OPENEMR_SETTING_bbdirect_api_key in Docker
        $this->assertSame('plain-preset-key', GlobalConfig::fromOpenEmr()->apiKey);
        $this->assertSame(0, CryptoGen::$failures, 'cryptCheckStandard first: no "Decryption is not working" per request');
    }

    public function testTheEnvironmentFillsSettingsThatHaveNoRowYet(): void
    {
        putenv('OPENEMR_SETTING_bbdirect_sidecar_url=http://sidecar:8080');
        putenv('OPENEMR_SETTING_bbdirect_api_key=env-key');
        try {
            $environment = GlobalConfig::environment();
            $this->assertSame(['bbdirect_sidecar_url' => 'http://sidecar:8080', 'bbdirect_api_key' => 'env-key'], $environment);
            $fresh = GlobalConfig::fromGlobals(GlobalConfig::withEnvironment([], $environment));
            $this->assertTrue($fresh->isConfigured(), 'a fresh stack works from its presets');
            $saved = GlobalConfig::fromGlobals(GlobalConfig::withEnvironment([GlobalConfig::API_KEY => ''], $environment));
            $this->assertSame('', $saved->apiKey, 'a row wins, even an emptied one');
            $initial = GlobalConfig::initialValues($environment);
            $this->assertSame('http://sidecar:8080', $initial[GlobalConfig::SIDECAR_URL]);
            $this->assertSame('bbdirect-sidecar', $initial[GlobalConfig::BACKEND_CLIENT_ID]);
            $this->assertSame('1', $initial[GlobalConfig::ENABLE_CARD]);
            $this->assertSame(array_keys(GlobalConfig::definitions()), array_keys($initial));
        } finally {
            putenv('OPENEMR_SETTING_bbdirect_sidecar_url');
            putenv('OPENEMR_SETTING_bbdirect_api_key');
        }
    }

    public function testUrlsAreDerivedFromThePublicUrl(): void
    {
        $config = GlobalConfig::fromGlobals([GlobalConfig::PUBLIC_URL => ' https://bb.example/ ']);
        $this->assertSame('https://bb.example/smart/launch', $config->sidecarLaunchUri());
        $this->assertSame('https://bb.example/smart/callback', $config->sidecarRedirectUri());
        $this->assertSame('https://bb.example/smart/start', $config->patientLaunchUrl());
        $override = GlobalConfig::fromGlobals([GlobalConfig::PUBLIC_URL => 'https://bb.example',
            GlobalConfig::PATIENT_LAUNCH_URL => 'https://portal.example/share']);
        $this->assertSame('https://portal.example/share', $override->patientLaunchUrl());
        $none = GlobalConfig::fromGlobals([GlobalConfig::PUBLIC_URL => 'ftp://bb.example']);
        $this->assertSame('', $none->sidecarLaunchUri());
        $this->assertSame('', $none->patientLaunchUrl());
    }

    public function testFeatureSwitchesAndTheirDefaults(): void
    {
        $defaults = GlobalConfig::fromGlobals([]);
        $this->assertTrue($defaults->cardEnabled && $defaults->portalEnabled && $defaults->pingsEnabled);
        $this->assertFalse($defaults->smartEnabled, 'the EHR launch waits for the administrator');
        $off = GlobalConfig::fromGlobals([GlobalConfig::ENABLE_CARD => '0', GlobalConfig::ENABLE_PORTAL => '',
            GlobalConfig::ENABLE_PINGS => 0, GlobalConfig::ENABLE_SMART => '1']);
        $this->assertFalse($off->cardEnabled || $off->portalEnabled || $off->pingsEnabled);
        $this->assertTrue($off->smartEnabled);
        foreach (GlobalConfig::definitions() as $key => [, $type, $default]) {
            if ($type === 'bool') {
                $this->assertSame($default === '1', (new \ReflectionProperty(GlobalConfig::class, match ($key) {
                    GlobalConfig::ENABLE_CARD => 'cardEnabled',
                    GlobalConfig::ENABLE_PORTAL => 'portalEnabled',
                    GlobalConfig::ENABLE_PINGS => 'pingsEnabled',
                    GlobalConfig::ENABLE_SMART => 'smartEnabled',
                }))->getValue($defaults), "$key: the settings page shows the default the module uses");
            }
        }
    }
}
