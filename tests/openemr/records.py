"""Clinical data put into a real OpenEMR the way its users' screens do: through OpenEMR's own services.

The standard REST API (``/apis/default/api``) calls the same services as the chart's forms (``AllergyIntoleranceService``,
``ConditionService``, ``EncounterService``, ``VitalsService``…), so what the sidecar later reads from the FHIR API
is what a clinician would have entered. Lab results have no write API in OpenEMR (they arrive through lab
interfaces into ``procedure_order`` / ``procedure_report`` / ``procedure_result``), so they are written there
with SQL, as a lab interface would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from tests.fixtures.openemr import OpenEmr

#: The standard-API scopes the seeding token needs (OpenEMR's `user/<api resource>.<read|write>` scopes).
WRITE_SCOPES = (
    "openid api:oemr api:fhir user/patient.read user/patient.write user/allergy.read user/allergy.write "
    "user/medical_problem.read user/medical_problem.write user/medication.read user/medication.write "
    "user/encounter.read user/encounter.write user/vital.read user/vital.write user/Condition.read "
    "user/MedicationRequest.read user/AllergyIntolerance.read user/Observation.read"
)


@dataclass
class Chart:
    """A patient in OpenEMR: ``pid`` (the chart number) and ``uuid`` (the FHIR ``Patient.id``)."""

    pid: int
    uuid: str
    name: str


class OpenEmrRecords:
    """Writes a chart's problems, medications, allergies, encounters and vitals through the REST API."""

    def __init__(self, oe: OpenEmr):
        self.oe = oe
        token = json.loads(oe.tool("oe-token.sh", WRITE_SCOPES))
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.oe.api_base}/{path}", json=body, timeout=60)
        return self._check(path, response)

    @staticmethod
    def _check(path: str, response: requests.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201), (
            f"POST {path}: {response.status_code} {response.text[:500]}"
        )
        answer = response.json()
        # OpenEMR answers a refused body with 200 too, as a bare error map; the legacy list endpoints
        # (medication, vitals) answer {"id": N} or {"vid": N, "fid": N}, the newer ones {"validationErrors": [], "data": {...}}.
        assert {"data", "id", "vid", "validationErrors"} & answer.keys(), f"POST {path}: {answer}"
        assert not answer.get("validationErrors") and not answer.get("internalErrors"), answer
        return answer.get("data") or answer

    def _post_dated(self, path: str, body: dict[str, Any], begdate: str) -> dict[str, Any]:
        """The list validators of 7.0.3 and 8.1 disagree on ``begdate`` (date vs date-time, per list type):
        send a date-time, and the plain date where that line's validator refuses it."""
        response = self.session.post(
            f"{self.oe.api_base}/{path}", json={**body, "begdate": f"{begdate} 00:00:00"}, timeout=60
        )
        if "begdate must be a valid date" not in response.text:
            return self._check(path, response)
        return self._post(path, {**body, "begdate": begdate})

    def _put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.put(f"{self.oe.api_base}/{path}", json=body, timeout=60)
        assert response.status_code == 200, f"PUT {path}: {response.status_code} {response.text[:500]}"
        return response.json().get("data") or {}

    def patient(self, given: str, family: str, **fields: str) -> Chart:
        created = self.oe.create_patient(fname=given, lname=family, **fields)
        return Chart(int(created["pid"]), created["uuid"], f"{given} {family}")

    def fhir_record(self, chart: Chart) -> list[dict[str, Any]]:
        """What OpenEMR's FHIR API returns for the patient: problems, medications, allergies, observations."""
        found: list[dict[str, Any]] = []
        for kind in ("Condition", "MedicationRequest", "AllergyIntolerance", "Observation"):
            answer = self.session.get(
                f"{self.oe.fhir_base}/{kind}", params={"patient": chart.uuid}, timeout=60
            )
            assert answer.status_code == 200, f"{kind}: {answer.status_code} {answer.text[:300]}"
            bundle = answer.json()
            assert not any(link.get("relation") == "next" for link in bundle.get("link", [])), kind
            found += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        return found

    def update_demographics(self, chart: Chart, **fields: str) -> None:
        """``PUT /api/patient/{uuid}``: ``PatientService::update()``, which fires ``patient.updated``."""
        self._put(f"patient/{chart.uuid}", fields)

    def problem(
        self, chart: Chart, title: str, diagnosis: str = "", begdate: str = "2020-03-01"
    ) -> dict[str, Any]:
        """``diagnosis`` as OpenEMR stores codes: ``ICD10:I10``."""
        body = {"title": title, "enddate": None, "diagnosis": diagnosis}
        return self._post_dated(f"patient/{chart.uuid}/medical_problem", body, begdate)

    def allergy(
        self, chart: Chart, title: str, diagnosis: str = "", begdate: str = "2019-05-01"
    ) -> dict[str, Any]:
        """``diagnosis`` is the substance code as OpenEMR stores it: ``RXNORM:10180``."""
        body = {"title": title, "enddate": None, "diagnosis": diagnosis}
        return self._post_dated(f"patient/{chart.uuid}/allergy", body, begdate)

    def medication(self, chart: Chart, title: str, begdate: str = "2020-01-15") -> dict[str, Any]:
        return self._post_dated(f"patient/{chart.pid}/medication", {"title": title, "enddate": None}, begdate)

    def encounter(self, chart: Chart, date: str = "2026-12-01", reason: str = "Checkup") -> int:
        facility = self.oe.sql("SELECT id FROM facility ORDER BY id LIMIT 1")[0][0]
        data = self._post(
            f"patient/{chart.uuid}/encounter",
            {
                "date": date,
                "onset_date": "",
                "reason": reason,
                "facility": "",
                "pc_catid": "5",
                "facility_id": facility,
                "billing_facility": facility,
                "sensitivity": "normal",
                "referral_source": "",
                "pos_code": "0",
                "external_id": "",
                "provider_id": "1",
                "class_code": "AMB",
            },
        )
        return int(data.get("encounter") or data.get("eid"))

    def vitals(self, chart: Chart, encounter: int, **values: str) -> dict[str, Any]:
        body = {
            "bps": "130",
            "bpd": "80",
            "weight": "150",
            "height": "65",
            "temperature": "98.6",
            "temp_method": "Oral",
            "pulse": "72",
            "respiration": "16",
            "note": "",
            "oxygen_saturation": "97",
        }
        body.update(values)
        return self._post(f"patient/{chart.pid}/encounter/{encounter}/vital", body)

    def lab_result(self, chart: Chart, code: str, name: str, value: str, units: str) -> None:
        """One final LOINC-coded result, stored as a lab interface stores it (order → report → result)."""
        oe = self.oe
        order = oe.sql(
            "INSERT INTO procedure_order (uuid, provider_id, patient_id, date_ordered, order_status, activity, "
            "procedure_order_type) VALUES (UNHEX(REPLACE(UUID(),'-','')), 1, "
            f"{int(chart.pid)}, NOW(), 'complete', 1, 'laboratory_test'); SELECT LAST_INSERT_ID()"
        )[0][0]
        oe.sql(
            "INSERT INTO procedure_order_code (procedure_order_id, procedure_order_seq, procedure_code, "
            f"procedure_name, procedure_type) VALUES ({int(order)}, 1, {_q(code)}, {_q(name)}, 'laboratory_test')"
        )
        report = oe.sql(
            "INSERT INTO procedure_report (uuid, procedure_order_id, procedure_order_seq, date_collected, "
            "date_report, report_status, review_status) VALUES (UNHEX(REPLACE(UUID(),'-','')), "
            f"{int(order)}, 1, NOW(), NOW(), 'final', 'reviewed'); SELECT LAST_INSERT_ID()"
        )[0][0]
        oe.sql(
            "INSERT INTO procedure_result (uuid, procedure_report_id, result_data_type, result_code, "
            "result_text, date, units, result, result_status) VALUES (UNHEX(REPLACE(UUID(),'-','')), "
            f"{int(report)}, 'N', {_q(code)}, {_q(name)}, NOW(), {_q(units)}, {_q(value)}, 'final')"
        )


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
