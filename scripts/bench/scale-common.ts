/** Shared by the two processes of `npm run bench:scale`. */

/** Adapters of the simulated gateway. */
export const SCALE_ADAPTERS = 8;

/** Address of device `i` (0-based). */
export function scaleAddress(i: number): string {
  const hex = (i + 1).toString(16).toUpperCase().padStart(4, '0');
  return `C0:FF:EE:00:${hex.slice(0, 2)}:${hex.slice(2)}`;
}
