// The part of raw-socket 1.8 (no bundled types) that the lab's ICMP probe uses.
declare module "raw-socket" {
  import { EventEmitter } from "node:events";

  export const Protocol: { ICMP: number; UDP: number; TCP: number; NONE: number };

  export interface RawSocket extends EventEmitter {
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      callback: (error: Error | null, bytes: number) => void,
    ): void;
    close(): void;
    on(event: "message", listener: (buffer: Buffer, source: string) => void): this;
    on(event: "error", listener: (error: Error) => void): this;
  }

  export function createSocket(options: { protocol: number }): RawSocket;
  const raw: { createSocket: typeof createSocket; Protocol: typeof Protocol };
  export default raw;
}
