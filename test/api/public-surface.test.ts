/**
 * What users can import is a decision, not a side effect: the exports of every entry point are
 * compared with docs/public-surface.txt. After a deliberate change, regenerate it with
 * `UPDATE_PUBLIC_SURFACE=1 npx vitest run test/api` and review the diff.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { publicSurface } from './surface.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'public-surface.txt');

describe('the public surface', () => {
  it('matches docs/public-surface.txt', () => {
    const now = `${publicSurface().join('\n')}\n`;
    if (process.env['UPDATE_PUBLIC_SURFACE'] === '1') writeFileSync(file, now);
    expect(now).toBe(readFileSync(file, 'utf8'));
  }, 60_000);

  it('the root keeps machine internals out: they live in /machines', () => {
    const root = publicSurface().filter((l) => l.startsWith('bluez-connection-manager '));
    for (const internal of [
      'connectionMachine',
      'recordFailure',
      'emptyLedger',
      'execFileRunner',
      'systemClock',
      'describeFailure',
    ]) {
      expect(root.some((l) => l.endsWith(` ${internal}`))).toBe(false);
    }
    // One name per concept: the failure taxonomy is FailureClass (ErrorClass is its BlueZ subset).
    expect(root.filter((l) => /FailureClass$/.test(l))).toEqual([
      'bluez-connection-manager type FailureClass',
    ]);
  }, 60_000);
});
