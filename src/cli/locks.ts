/**
 * `bluez-cm locks [--dir DIR] [--json]`: the slot and scan lock files in the lock directory and
 * the processes holding them (from /proc/locks, matched by device and inode). Read-only.
 */
import { parseFlags, usageFailure, UsageError } from './args.js';
import { describeHolders, lockName, readLockReport } from './lock-report.js';

const HELP = `usage: bluez-cm locks [--dir DIR] [--json]

Lists the cross-process lock files services on this host share (the Python
library bleak-connection-manager uses the same ones):
  DIR/bleak-cm-{adapter}-slot-{slot}.lock   connection slots per adapter
  DIR/bleak-cm-{adapter}-scan.lock          the scan lock per adapter
and which process holds each, from /proc/locks. Nothing is opened or locked.

  -d, --dir DIR   lock directory (default /run)
      --json      one JSON object
  -h, --help      this text
`;

export async function run(args: string[]): Promise<number> {
  let dir: string;
  let json: boolean;
  try {
    const { values } = parseFlags(args, {
      dir: { type: 'string', short: 'd' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    dir = typeof values.dir === 'string' ? values.dir : '/run';
    if (!dir.startsWith('/')) throw new UsageError(`--dir must be an absolute path, got "${dir}"`);
    json = values.json === true;
  } catch (e) {
    return usageFailure('locks', e, HELP);
  }
  const report = await readLockReport(dir);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        dir: report.dir,
        files: report.files.map((f) => ({
          path: f.path,
          kind: f.kind,
          adapter: f.adapter,
          slot: f.slot,
          holders: f.holders.map((pid, i) => ({ pid, name: f.holderNames[i] ?? null })),
          waiters: f.waiters,
        })),
      })}\n`,
    );
    return 0;
  }
  if (report.files.length === 0) {
    process.stdout.write(
      `no slot or scan lock files in ${dir} (no service here has used locks since boot)\n`,
    );
    return 0;
  }
  const width = Math.max(...report.files.map((f) => lockName(f).length));
  const lines = report.files.map((f) => `${lockName(f).padEnd(width)}  ${describeHolders(f)}  ${f.path}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
