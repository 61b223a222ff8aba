// tsc does not keep the executable bit; npm links `bin` entries but a direct
// `./dist/cli/main.js` call (and some package managers) need it set.
import { chmodSync, existsSync } from 'node:fs';

const bin = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(bin)) chmodSync(bin, 0o755);
