// `npm test`: creates the emulator's CA, then starts jest with NODE_EXTRA_CA_CERTS set (Node reads
// it only at start-up, so jest's globalSetup would be too late: on 2 cores jest runs in band, in its
// own already-started process). Prints one closing line `N passed, N failed` from jest's JSON
// results and exits non-zero on a failed test, a suite that failed to load, or a run with no tests.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { envTrustingEmulatorCa, root } from './with-ca.mjs';

const env = envTrustingEmulatorCa();
if (!env) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const resultsDir = join(root, 'test-results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `jest-${process.pid}.json`);
rmSync(resultsFile, { force: true });

const jest = spawnSync(
  process.execPath,
  [
    join(root, 'node_modules/jest/bin/jest.js'),
    '--runInBand',
    '--json',
    `--outputFile=${resultsFile}`,
    ...process.argv.slice(2),
  ],
  { cwd: root, env, stdio: 'inherit' },
);

let results;
try {
  results = JSON.parse(readFileSync(resultsFile, 'utf8'));
} catch {
  console.log('0 passed, 1 failed');
  process.stderr.write('jest wrote no results\n');
  process.exit(1);
}
const passed = results.numPassedTests ?? 0;
const failed = (results.numFailedTests ?? 0) + (results.numRuntimeErrorTestSuites ?? 0);
const problems = [];
if (results.numRuntimeErrorTestSuites > 0)
  problems.push(`${results.numRuntimeErrorTestSuites} suite(s) failed to load`);
if (results.numTotalTests === 0) problems.push('no tests ran');
if (jest.status !== 0 && failed === 0) problems.push(`jest exited with ${jest.status}`);
for (const p of problems) process.stderr.write(`${p}\n`);
rmSync(resultsFile, { force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || problems.length > 0 || jest.status !== 0 ? 1 : 0);
