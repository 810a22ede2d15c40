<?php

/**
 * PatientDirectory on OpenEMR's own database helpers (sqlQuery with bound parameters; UuidRegistry).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

use OpenEMR\Common\Uuid\UuidRegistry;

final class OpenEmrPatientDirectory implements PatientDirectory
{
    /** @var array<int, array<string, mixed>|null> */
    private array $rows = [];

    public function fhirId(int $pid): ?string
    {
        $row = $this->row($pid);
        if (empty($row['uuid'])) {
            return null;
        }
        return UuidRegistry::uuidToString($row['uuid']);
    }

    public function directAddress(int $pid): ?string
    {
        $address = trim((string) ($this->row($pid)['email_direct'] ?? ''));
        return $address === '' ? null : $address;
    }

    /** @return array<string, mixed>|null */
    private function row(int $pid): ?array
    {
        if (!array_key_exists($pid, $this->rows)) {
            $row = \sqlQuery('SELECT `uuid`, `email_direct` FROM `patient_data` WHERE `pid` = ?', [$pid]);
            $this->rows[$pid] = is_array($row) ? $row : null;
        }
        return $this->rows[$pid];
    }
}
