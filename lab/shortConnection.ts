// One short connection to a tiny-response server (bench/connLoad.c, lab/benchTools.ts
// small-server): connect, "GET /s HTTP/1.0", read the whole response, close. The unit of the bench's
// connection rate and of the flood probes.
import net from 'node:net';
import type { Endpoint } from './endpoint';
import { timedAttempt, type AttemptResult } from './timedAttempt';

/** Resolves with the connection's time in ms (connect to the end of the response), or why it failed. */
export function shortConnection(target: Endpoint, localAddress: string | undefined, timeoutMs: number): Promise<AttemptResult> {
  return timedAttempt(timeoutMs, (finish, elapsed) => {
    let head = '';
    const socket = net.connect({ host: target.ip, port: target.port, localAddress });
    socket.once('connect', () => socket.write('GET /s HTTP/1.0\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 4) head += chunk.toString('latin1', 0, Math.min(chunk.length, 4 - head.length));
    });
    // "HTTP" first: a response, not a reset or an empty close.
    socket.once('end', () => finish(head.startsWith('HTTP') ? elapsed() : 'bad response'));
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    return () => socket.destroy();
  });
}
