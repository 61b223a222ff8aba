// Prints "N passed, N failed" from vitest JSON reports; CI reads only that line.
// A missing report counts as one failure: a run that produced nothing did not pass.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
const [first, ...optional] = process.argv.slice(2);
for (const file of [first, ...optional]) {
  if (!file) continue;
  if (!existsSync(file)) {
    if (file === first) {
      console.error(`ci-totals: ${file} is missing`);
      failed += 1;
    }
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  // A file that failed to load has no tests but is a failure all the same.
  for (const suite of report.testResults ?? []) {
    if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed += 1;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
