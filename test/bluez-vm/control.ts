import { connect } from 'node:net';
import type { Socket } from 'node:net';

/**
 * Client of the guest's control server (guest/bzvm-control): one command per line; the reply is
 * data lines starting with "| " and a final "OK" or "ERR <reason>". Commands run one at a time.
 */
export class ControlChannel {
  private buffer = '';
  private waiter: (() => void) | undefined;
  private readonly lines: string[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.wake();
    });
    const onGone = (err?: Error): void => {
      this.closedError = err ?? new Error('control channel closed');
      this.wake();
    };
    socket.on('error', onGone);
    socket.on('close', () => onGone());
  }

  /** Connects to 127.0.0.1:port, retrying until `timeoutMs` (qemu forwards before the guest listens). */
  static async open(port: number, timeoutMs: number): Promise<ControlChannel> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
          s.once('error', reject);
        });
        const channel = new ControlChannel(socket);
        // qemu accepts the TCP connection even while nothing listens in the guest, then closes it:
        // only a real reply proves the server is there.
        await channel.command('ping', 5_000);
        return channel;
      } catch (err) {
        if (Date.now() > end)
          throw new Error(`guest control server on port ${port} unreachable: ${String(err)}`, { cause: err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Runs one command; resolves with its data lines, rejects on ERR, close or deadline. */
  command(line: string, timeoutMs = 60_000): Promise<string[]> {
    const run = this.queue.then(() => this.exchange(line, timeoutMs));
    this.queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.socket.destroy();
  }

  private async exchange(line: string, timeoutMs: number): Promise<string[]> {
    this.socket.write(`${line}\n`);
    const data: string[] = [];
    const end = Date.now() + timeoutMs;
    for (;;) {
      const reply = await this.nextLine(end - Date.now(), line);
      if (reply.startsWith('| ')) data.push(reply.slice(2));
      else if (reply === 'OK') return data;
      else throw new Error(`guest control "${line}" failed: ${reply}`);
    }
  }

  private nextLine(timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.waiter = undefined;
          reject(new Error(`guest control "${what}" got no reply within its deadline`));
        },
        Math.max(0, timeoutMs),
      );
      const attempt = (): void => {
        const next = this.lines.shift();
        if (next !== undefined) {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(next);
        } else if (this.closedError) {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(this.closedError);
        } else {
          this.waiter = attempt;
        }
      };
      attempt();
    });
  }

  private wake(): void {
    this.waiter?.();
  }
}
