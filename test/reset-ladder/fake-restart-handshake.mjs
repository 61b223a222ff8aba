// A stand-in for `systemctl restart bluetooth` that hands the restart to the test: it writes its pid
// to <dir>/requested, then waits until the test has restarted the simulated bluetoothd and written
// <dir>/done (systemctl also returns only once the unit was restarted). It gives up after
// <limitMs> (exit 1), so a test that never answers cannot leave it running.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearInterval, setInterval } from 'node:timers';

const [dir, limitMs = '15000'] = process.argv.slice(2);
writeFileSync(join(dir, 'requested'), String(process.pid));
const end = Date.now() + Number(limitMs);
const timer = setInterval(() => {
  if (existsSync(join(dir, 'done'))) {
    clearInterval(timer);
    process.exit(0);
  }
  if (Date.now() > end) {
    clearInterval(timer);
    process.stderr.write('the restart was not confirmed in time\n');
    process.exit(1);
  }
}, 10);
