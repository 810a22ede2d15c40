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

    public function testAPlainPresetKeyIsUsedAsIs(): void
    {
        $GLOBALS[GlobalConfig::API_KEY] = 'plain-preset-key'; // OPENEMR_SETTING_bbdirect_api_key in Docker
        $this->assertSame('plain-preset-key', GlobalConfig::fromOpenEmr()->apiKey);
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
