<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\RegistrationResult;
use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/../../ModuleManagerListener.php';

final class ModuleManagerListenerTest extends TestCase
{
    public function testEnableRegistersTheSmartAppsAndEnables(): void
    {
        $calls = 0;
        $listener = new \ModuleManagerListener(function () use (&$calls): RegistrationResult {
            $calls++;
            return new RegistrationResult(RegistrationResult::REGISTERED, 'SMART clients registered');
        }, $this->noDefaults());
        $this->assertSame('Success', $listener->moduleManagerAction('enable', '7', 'Success'));
        $this->assertSame(1, $calls);
        $this->assertSame(RegistrationResult::REGISTERED, $listener->lastRegistration->status);
    }

    public function testARegistrationFailureNeverStopsTheModuleFromBeingEnabled(): void
    {
        $listener = new \ModuleManagerListener(static function (): RegistrationResult {
            throw new \RuntimeException('database down, password=secret');
        }, $this->noDefaults());
        $message = $listener->moduleManagerAction('enable', '7', 'Success');
        $this->assertSame('Blue Button Direct is enabled. SMART clients not registered: RuntimeException.', $message);
        $this->assertSame(RegistrationResult::FAILED, $listener->lastRegistration->status);
        $this->assertStringNotContainsString('secret', $message);
    }

    public function testASkippedRegistrationTellsTheAdministratorWhy(): void
    {
        $listener = new \ModuleManagerListener(static fn(): RegistrationResult => new RegistrationResult(
            RegistrationResult::SKIPPED,
            'SMART clients not registered: register the apps by hand under Admin → System → API Clients.',
        ), $this->noDefaults());
        $message = $listener->moduleManagerAction('enable', '7', 'Success');
        $this->assertStringStartsWith('Blue Button Direct is enabled. ', $message);
        $this->assertStringContainsString('API Clients', $message);
    }

    public function testInstallAndEnableWriteTheDefaultSettings(): void
    {
        $writes = [];
        $listener = new \ModuleManagerListener(
            static fn(): RegistrationResult => new RegistrationResult(RegistrationResult::UNCHANGED, 'ok'),
            static function () use (&$writes): void {
                $writes[] = 'defaults';
            },
        );
        $this->assertSame('Success', $listener->moduleManagerAction('install', '7', 'Success'));
        $this->assertSame('Success', $listener->moduleManagerAction('enable', '7', 'Success'));
        $this->assertSame(['defaults', 'defaults'], $writes);
    }

    private function noDefaults(): callable
    {
        return static function (): void {
        };
    }

    public function testOtherActionsPassTheStatusThrough(): void
    {
        $listener = new \ModuleManagerListener(static fn(): RegistrationResult => throw new \LogicException('not called'), $this->noDefaults());
        foreach (['install', 'disable', 'unregister', 'install_sql', 'upgrade_sql', 'no_such_action', 'getModuleNamespace'] as $action) {
            $this->assertSame('Success', $listener->moduleManagerAction($action, '7', 'Success'), $action);
        }
        $this->assertSame('Success', $listener->moduleManagerAction(['enable'], '7', 'Success'));
        $this->assertSame('OpenEMR\\Modules\\BlueButtonDirect\\', \ModuleManagerListener::getModuleNamespace());
        $this->assertInstanceOf(\ModuleManagerListener::class, \ModuleManagerListener::initListenerSelf());
    }
}
