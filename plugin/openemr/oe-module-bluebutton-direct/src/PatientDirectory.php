<?php

/**
 * What the module needs to know about an OpenEMR patient: the FHIR id the sidecar uses (the patient's
 * uuid, as OpenEMR's FHIR API exposes it) and the patient's Direct ("trusted") e-mail to pre-fill the form.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

interface PatientDirectory
{
    /** The FHIR Patient id for an OpenEMR pid, or null when there is no such patient. */
    public function fhirId(int $pid): ?string;

    /** patient_data.email_direct, when the EMR has one. */
    public function directAddress(int $pid): ?string;
}
