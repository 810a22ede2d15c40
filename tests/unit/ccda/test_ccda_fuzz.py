"""Type-confused FHIR (seeded, so every run is the same): the mapper never raises and never writes bad XML.

Real exports put strings where objects belong, numbers where lists belong, blank codes, impossible dates.
Each case takes a real bundle, replaces random fields with such values, builds, and checks the result
against the CDA schema (and, for some, the full Schematron).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from ccda_mapper import NoPatient, NotFhir, build
from ccda_mapper.validation import XSD_PATH, validate

DATA = Path(__file__).resolve().parents[2] / "data" / "fhir"
WEIRD: list[Any] = [
    None,
    5,
    -1.5,
    "x",
    "",
    [],
    {},
    [None],
    [{}],
    {"coding": "x"},
    {"coding": [None, 5]},
    True,
    "2020-13-45",
    [[1]],
    " a b ",
    "2020-01-01T10:00",
    "\x01ctl",
]
BUNDLES = [
    "inferno_uscore_client_test_patient",
    "uscore_ig_examples_amy_shaw",
    "synthea24_patria_schimmel_allergies_goals",
    "inferno_uscore_patient85_lucien_bosco",
]


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def _mutate(rng: random.Random, obj: Any) -> None:
    if isinstance(obj, dict):
        for k in list(obj):
            if k == "resourceType":
                continue
            r = rng.random()
            if r < 0.07:
                obj[k] = copy.deepcopy(rng.choice(WEIRD))
            elif r < 0.09:
                del obj[k]
            else:
                _mutate(rng, obj[k])
    elif isinstance(obj, list):
        for i in range(len(obj)):
            if rng.random() < 0.05:
                obj[i] = copy.deepcopy(rng.choice(WEIRD))
            else:
                _mutate(rng, obj[i])


def _dirty(name: str, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    data = json.loads((DATA / f"{name}.json").read_bytes())
    for entry in data["entry"]:
        _mutate(rng, entry["resource"])
    return data


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("seed", range(6))
def test_type_confused_input_gives_schema_valid_xml(name: str, seed: int, schema: etree.XMLSchema) -> None:
    try:
        result = build(_dirty(name, seed))
    except (NotFhir, NoPatient):  # the Patient itself was mangled beyond use: a clean refusal is fine
        return
    doc = etree.fromstring(result.xml)
    assert schema.validate(doc), str(schema.error_log.filter_from_errors()[:3])


@pytest.mark.parametrize("seed", [1, 2])
def test_type_confused_input_passes_the_schematron(seed: int) -> None:
    result = build(_dirty("uscore_ig_examples_amy_shaw", seed))
    report = validate(result.xml)
    assert report.ok, "\n".join(str(i) for i in report.errors[:10])
