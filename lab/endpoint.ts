// An IPv4 address and port that a lab tool connects to, and its command-line form "IP:PORT".
import { UsageError, isIpv4 } from './toolArgs';

export interface Endpoint {
  ip: string;
  port: number;
}

/** Parses option `--name`'s value "IPv4:port"; a UsageError names the option. */
export function parseEndpoint(name: string, text: string): Endpoint {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(text);
  if (m === null || !isIpv4(m[1] as string) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UsageError(`--${name} must be IPv4:port, got "${text}"`);
  }
  return { ip: m[1] as string, port: Number(m[2]) };
}
