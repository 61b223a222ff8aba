// `npm run bench [-- options]`: compiles scripts/bench (and what it imports from src/ and the
// real-BlueZ tier) into .bench-build/, then runs it with node. tsx is not a dependency.
import { spawnSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (command, args) => {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.bench.json']);
// The VM helpers find boot.sh, build-guest.sh and the guest files next to their own module.
const vm = join(root, 'test', 'bluez-vm');
const vmOut = join(root, '.bench-build', 'test', 'bluez-vm');
for (const name of ['boot.sh', 'build-guest.sh', 'guest'])
  cpSync(join(vm, name), join(vmOut, name), { recursive: true });
run(process.execPath, [join(root, '.bench-build', 'scripts', 'bench', 'bench.js'), ...process.argv.slice(2)]);
