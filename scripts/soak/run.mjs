// `npm run soak [-- options]`: compiles scripts/soak (and the test/soak harness and src/ it imports)
// into .soak-build/, then runs it with node --expose-gc (the heap is measured after full GCs).
// tsx is not a dependency.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (command, args) => {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.soak.json']);
run(process.execPath, [
  '--expose-gc',
  join(root, '.soak-build', 'scripts', 'soak', 'soak.js'),
  ...process.argv.slice(2),
]);
