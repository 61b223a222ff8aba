// `npm run bench:scale [-- options]`: compiles scripts/bench into .bench-build/ (like run.mjs), then
// runs scale.js with --expose-gc (heap per device is measured after a full collection).
// NODE_BENCH_FLAGS adds node flags, e.g. NODE_BENCH_FLAGS=--cpu-prof for a CPU profile.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (command, args) => {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.bench.json']);
const extra = (process.env.NODE_BENCH_FLAGS ?? '').split(' ').filter((f) => f.length > 0);
run(process.execPath, [
  '--expose-gc',
  ...extra,
  join(root, '.bench-build', 'scripts', 'bench', 'scale.js'),
  ...process.argv.slice(2),
]);
