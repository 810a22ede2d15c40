#!/usr/bin/env node
// Times Medplum's convertFhirToCcda (npm @medplum/ccda) on FHIR bundles, for bench/ccda_bench.py.
//
// Usage: node medplum_bench.js --runs N --warmup W --out-dir DIR BUNDLE.json [...]
// Prints one JSON object {"<bundle>": {"ms": [...], "resources": n, "xml": "<path>"} | {"error": "..."}}.
//
// convertFhirToCcda needs a *document* bundle (a Composition whose sections reference the entries, plus the
// Patient). Our input bundles are transaction/collection bundles, so a Composition is assembled first, once,
// outside the timed region, the way a server would before calling the converter: one section per kind of
// resource, with the section LOINC codes the library itself exports. The timed region is exactly
// convertFhirToCcda(bundle) + convertCcdaToXml(ccda), i.e. parsed FHIR in, XML text out -- the same work
// bench/ccda_bench.py times for ours (build_ccd on the parsed bundle, bytes out).
'use strict';
const fs = require('fs');
const path = require('path');

// @medplum/ccda 5.x declares node >= 22 and touches the WebSocket global at load time (from @medplum/core's
// client code, unused here). Node 20 has no global WebSocket; an inert stub is enough for the converter.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class {};
}
const medplum = require('@medplum/ccda');

function parseArgs(argv) {
  const opts = { runs: 20, warmup: 3, outDir: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') opts.runs = Number(argv[++i]);
    else if (a === '--warmup') opts.warmup = Number(argv[++i]);
    else if (a === '--out-dir') opts.outDir = argv[++i];
    else opts.files.push(a);
  }
  return opts;
}

function categories(resource) {
  const out = new Set();
  for (const cat of [].concat(resource.category || [])) {
    for (const c of (cat && cat.coding) || []) out.add(c.code);
  }
  return out;
}

function sectionFor(resource) {
  const cats = categories(resource);
  switch (resource.resourceType) {
    case 'AllergyIntolerance': return medplum.LOINC_ALLERGIES_SECTION;
    case 'MedicationRequest': return medplum.LOINC_MEDICATIONS_SECTION;
    case 'Immunization': return medplum.LOINC_IMMUNIZATIONS_SECTION;
    case 'Procedure': return medplum.LOINC_PROCEDURES_SECTION;
    case 'Encounter': return medplum.LOINC_ENCOUNTERS_SECTION;
    case 'Goal': return medplum.LOINC_GOALS_SECTION;
    case 'CarePlan':
    case 'ServiceRequest': return medplum.LOINC_PLAN_OF_TREATMENT_SECTION;
    case 'CareTeam': return medplum.LOINC_CARE_TEAM_SECTION;
    case 'DeviceUseStatement': return medplum.LOINC_DEVICES_SECTION;
    case 'DiagnosticReport': return medplum.LOINC_RESULTS_SECTION;
    case 'Condition':
      return cats.has('health-concern') ? medplum.LOINC_HEALTH_CONCERNS_SECTION : medplum.LOINC_PROBLEMS_SECTION;
    case 'Observation':
      if (cats.has('vital-signs')) return medplum.LOINC_VITAL_SIGNS_SECTION;
      if (cats.has('social-history')) return medplum.LOINC_SOCIAL_HISTORY_SECTION;
      return medplum.LOINC_RESULTS_SECTION;
    default: return null;
  }
}

const TITLES = {
  [medplum.LOINC_ALLERGIES_SECTION]: 'Allergies',
  [medplum.LOINC_MEDICATIONS_SECTION]: 'Medications',
  [medplum.LOINC_PROBLEMS_SECTION]: 'Problems',
  [medplum.LOINC_RESULTS_SECTION]: 'Results',
  [medplum.LOINC_VITAL_SIGNS_SECTION]: 'Vital Signs',
  [medplum.LOINC_SOCIAL_HISTORY_SECTION]: 'Social History',
  [medplum.LOINC_IMMUNIZATIONS_SECTION]: 'Immunizations',
  [medplum.LOINC_PROCEDURES_SECTION]: 'Procedures',
  [medplum.LOINC_ENCOUNTERS_SECTION]: 'Encounters',
  [medplum.LOINC_GOALS_SECTION]: 'Goals',
  [medplum.LOINC_PLAN_OF_TREATMENT_SECTION]: 'Plan of Treatment',
  [medplum.LOINC_CARE_TEAM_SECTION]: 'Care Team',
  [medplum.LOINC_DEVICES_SECTION]: 'Medical Equipment',
  [medplum.LOINC_HEALTH_CONCERNS_SECTION]: 'Health Concerns',
};
// Sections a CCD always has, even when empty (Medplum then writes nullFlavor="NI").
const REQUIRED = [medplum.LOINC_ALLERGIES_SECTION, medplum.LOINC_MEDICATIONS_SECTION,
  medplum.LOINC_PROBLEMS_SECTION, medplum.LOINC_RESULTS_SECTION, medplum.LOINC_SOCIAL_HISTORY_SECTION,
  medplum.LOINC_VITAL_SIGNS_SECTION, medplum.LOINC_PROCEDURES_SECTION, medplum.LOINC_IMMUNIZATIONS_SECTION];

/** Document bundle for Medplum: resources with ids, a Composition referencing them as Type/id. */
function documentBundle(input) {
  const resources = [];
  for (const e of input.entry || []) {
    const r = e && e.resource;
    if (!r || !r.resourceType) continue;
    if (!r.id && typeof e.fullUrl === 'string') r.id = e.fullUrl.replace(/^urn:uuid:/, '').split('/').pop();
    resources.push(r);
  }
  const patient = resources.find((r) => r.resourceType === 'Patient');
  const sections = new Map(REQUIRED.map((code) => [code, []]));
  for (const r of resources) {
    const code = sectionFor(r);
    if (!code) continue;
    if (!sections.has(code)) sections.set(code, []);
    sections.get(code).push({ reference: `${r.resourceType}/${r.id}` });
  }
  const custodian = resources.find((r) => r.resourceType === 'Organization');
  const author = resources.find((r) => r.resourceType === 'Practitioner') || custodian;
  const composition = {
    resourceType: 'Composition',
    id: 'bench-composition',
    status: 'final',
    type: { coding: [{ system: 'http://loinc.org', code: '34133-9' }] },
    subject: patient ? { reference: `Patient/${patient.id}` } : undefined,
    date: '2024-01-01T00:00:00Z',
    title: 'Continuity of Care Document',
    author: author ? [{ reference: `${author.resourceType}/${author.id}` }] : [],
    custodian: custodian ? { reference: `Organization/${custodian.id}` } : undefined,
    section: [...sections.entries()].map(([code, entry]) => ({
      title: TITLES[code] || code,
      code: { coding: [{ system: 'http://loinc.org', code }] },
      entry,
    })),
  };
  return { resourceType: 'Bundle', type: 'document', entry: [composition, ...resources].map((resource) => ({ resource })) };
}

function convert(bundle) {
  return medplum.convertCcdaToXml(medplum.convertFhirToCcda(bundle));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = {};
  for (const file of opts.files) {
    const input = JSON.parse(fs.readFileSync(file, 'utf8'));
    const bundle = documentBundle(input);
    try {
      let xml = '';
      for (let i = 0; i < opts.warmup; i++) xml = convert(bundle);
      const ms = [];
      for (let i = 0; i < opts.runs; i++) {
        const t0 = process.hrtime.bigint();
        xml = convert(bundle);
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      let xmlPath = null;
      if (opts.outDir) {
        xmlPath = path.join(opts.outDir, path.basename(file, '.json') + '.medplum.xml');
        fs.writeFileSync(xmlPath, xml);
      }
      out[file] = { ms, resources: bundle.entry.length - 1, xml: xmlPath };
    } catch (err) {
      out[file] = { error: String((err && err.message) || err).slice(0, 300), resources: bundle.entry.length - 1 };
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main();
