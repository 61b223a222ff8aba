// A stand-in for `systemctl restart bluetooth`: records its argv (one JSON line per run) and exits
// with the code given as its second argument, printing a complaint on stderr when that is not 0.
import { appendFileSync } from 'node:fs';

const [recordFile, exitCode, ...args] = process.argv.slice(2);
appendFileSync(recordFile, `${JSON.stringify(args)}\n`);
if (exitCode !== '0') process.stderr.write('Job for bluetooth.service failed\n');
process.exit(Number(exitCode));
