// BIRD's control socket (the one birdc talks to), spoken directly: natlb needs one command of it,
// `configure`, to make BIRD read the routes file again. The protocol is text: a greeting, then per
// command reply lines "DDDD-text" (more follow) or "DDDD text" (the last), where codes 0xxx are
// success, 8xxx run-time errors and 9xxx parse errors (BIRD's doc/reply_codes).
import net from "node:net";
import { BgpError } from "../errors";

export interface BirdReply {
  /** The code of the last line, e.g. 3 for "0003 Reconfigured". */
  readonly code: number;
  readonly lines: readonly string[];
}

const FINAL_LINE = /^(\d{4}) (.*)$/;

/** Sends one command on BIRD's control socket and resolves with its reply; throws BgpError when BIRD answers an error or is not there. */
export function birdCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<BirdReply> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffered = "";
    let greeted = false;
    const lines: string[] = [];
    const finish = (error: Error | undefined, reply?: BirdReply) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new BgpError(`BIRD did not answer "${command}" on ${socketPath} within ${timeoutMs} ms: is bird running and is the socket right?`)), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("error", (error: NodeJS.ErrnoException) =>
      finish(new BgpError(`cannot talk to BIRD on ${socketPath} (${error.code ?? error.message}): start bird, or set bgp.birdSocket to its control socket (bird -s)`, { cause: error })),
    );
    socket.on("close", () => finish(new BgpError(`BIRD closed its control socket ${socketPath} before answering "${command}"`)));
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        const final = FINAL_LINE.exec(line);
        if (!greeted) {
          // "0001 BIRD 2.0.12 ready."
          if (final?.[1] !== "0001") return finish(new BgpError(`${socketPath} is not BIRD's control socket: it said ${JSON.stringify(line)}`));
          greeted = true;
          socket.write(`${command}\n`);
          continue;
        }
        lines.push(line);
        if (!final) continue;
        const code = Number(final[1]);
        if (code >= 8000) return finish(new BgpError(`BIRD refused "${command}": ${lines.join(" | ")}`));
        return finish(undefined, { code, lines });
      }
    });
  });
}
