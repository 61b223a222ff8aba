/**
 * `--inspect` of `bluez-cm demo` and `bluez-cm connect`: the machines in the Stately inspector.
 * `@statelyai/inspect` (an optional peer dependency) runs a local bridge, an HTTP page that embeds
 * the inspector UI plus a WebSocket that this process sends its inspection events to; the page
 * shows every actor (the pool, its adapter and connection actors, what they invoke) as a tree.
 */
import type * as InspectClient from '@statelyai/inspect';
import type * as InspectServer from '@statelyai/inspect/server';
import type { InspectionEvent } from 'xstate';
import { UsageError } from './args.js';

/** The running bridge: its page, the observer for the `inspect` option, and how to stop both. */
export interface CliInspector {
  /** Open this in a browser. */
  readonly url: string;
  /** For the `inspect` option (or to forward events to). */
  readonly inspect: (event: InspectionEvent) => void;
  stop(): void;
}

/** Default port of the bridge (`@statelyai/inspect`'s own default). */
export const DEFAULT_INSPECT_PORT = 8080;

/**
 * Starts `@statelyai/inspect`'s bridge on `port` without opening a browser (the caller prints
 * {@link inspectHint}). Throws a UsageError when the package is not installed.
 */
export async function startCliInspector(port = DEFAULT_INSPECT_PORT): Promise<CliInspector> {
  let client: typeof InspectClient;
  let server: typeof InspectServer;
  try {
    client = await import('@statelyai/inspect');
    server = await import('@statelyai/inspect/server');
  } catch {
    throw new UsageError('--inspect needs the package @statelyai/inspect: npm install @statelyai/inspect');
  }
  const bridge = server.createInspectorServer({ port, autoOpen: false });
  const inspector = client.createWebSocketInspector({ url: `ws://localhost:${port}` });
  return {
    url: `http://localhost:${port}`,
    inspect: (event) => inspector.inspect.next?.(event),
    stop() {
      inspector.stop();
      bridge.stop();
    },
  };
}

/** What the CLI prints when `--inspect` is on. */
export function inspectHint(command: string, inspector: CliInspector): string {
  return `bluez-cm ${command}: Stately inspector: open ${inspector.url} in a browser (the page embeds https://stately.ai/inspect and shows every actor live, each under its parent)\n`;
}
