<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Events\Patient\PatientUpdatedEvent;
use OpenEMR\Events\Services\ServiceSaveEvent;
use OpenEMR\Modules\BlueButtonDirect\ChangePinger;
use OpenEMR\Modules\BlueButtonDirect\SidecarClient;
use OpenEMR\Services\BaseService;
use PHPUnit\Framework\TestCase;

final class ChangePingerTest extends TestCase
{
    private ScriptedTransport $http;
    /** @var list<callable> */
    private array $deferred = [];

    private function pinger(): ChangePinger
    {
        $this->http = new ScriptedTransport();
        $patients = new ArrayPatients([7 => ['9a3e0c7e-0000-4000-8000-000000000007', null]]);
        return new ChangePinger(new SidecarClient('http://s', 'k', $this->http), $patients, function (callable $f): void {
            $this->deferred[] = $f;
        });
    }

    public function testPatientUpdateIsPingedAfterTheRequestNotDuringIt(): void
    {
        $pinger = $this->pinger();
        $pinger->onPatientUpdated(new PatientUpdatedEvent(['pid' => 7], ['pid' => 7, 'fname' => 'X']));
        $this->assertSame([], $this->http->requests, 'nothing is sent while the EMR is saving');
        $this->assertCount(1, $this->deferred);
        ($this->deferred[0])();
        $this->assertCount(1, $this->http->requests);
        $this->assertStringEndsWith('/api/v1/patients/9a3e0c7e-0000-4000-8000-000000000007/changed', $this->http->requests[0]['url']);
    }

    public function testDemographicsSaveAuxEventIsPinged(): void
    {
        $pinger = $this->pinger();
        $pinger->onPatientUpdatedAux(new \OpenEMR\Events\Patient\PatientUpdatedEventAux(7, ['form_fname' => 'X']));
        ($this->deferred[0])();
        $this->assertStringEndsWith('/api/v1/patients/9a3e0c7e-0000-4000-8000-000000000007/changed', $this->http->requests[0]['url']);
    }

    public function testManySavesOfOnePatientMakeOnePing(): void
    {
        $pinger = $this->pinger();
        for ($i = 0; $i < 5; $i++) {
            $pinger->onServiceSaved(new ServiceSaveEvent(new BaseService(), ['pid' => 7, 'value' => $i]));
        }
        $this->assertCount(1, $this->deferred);
        ($this->deferred[0])();
        $this->assertCount(1, $this->http->requests);
    }

    public function testUuidInTheSaveDataIsUsedDirectly(): void
    {
        $pinger = $this->pinger();
        $pinger->onServiceSaved(new ServiceSaveEvent(new BaseService(), ['puuid' => 'AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE']));
        $this->assertSame(['aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'], $pinger->pending());
    }

    public function testUnknownPatientAndJunkAreIgnored(): void
    {
        $pinger = $this->pinger();
        $pinger->onServiceSaved(new ServiceSaveEvent(new BaseService(), ['pid' => 999]));
        $pinger->onServiceSaved(new ServiceSaveEvent(new BaseService(), ['puuid' => "x'; DROP TABLE"]));
        $this->assertSame([], $pinger->pending());
        $this->assertSame([], $this->deferred);
    }

    public function testADownSidecarNeverBreaksTheSave(): void
    {
        $pinger = $this->pinger();
        $this->http->unreachable();
        $pinger->onPatientUpdated(new PatientUpdatedEvent(['pid' => 7], ['pid' => 7]));
        ($this->deferred[0])();
        $this->assertSame(1, $pinger->failures());
    }
}
