// keepalived for the HA pair lab (haPairTopology.ts): one VRRP instance per gateway for the reals'
// gateway address on the backend LAN, unicast to the peer, fast adverts, and natlb's notify entry.
// keepalived is the election (issue 13: natlb invents none); each runs in its gateway's namespace
// with its own config, pid files and runtime files under the lab's temp dir.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const KEEPALIVED_BIN = '/usr/sbin/keepalived';

export interface VrrpInstanceOptions {
  /** The interface VRRP runs on (the backend LAN). */
  readonly interface: string;
  /** This gateway's own address there, and its peer's (unicast adverts). */
  readonly sourceIp: string;
  readonly peerIp: string;
  /** The address keepalived moves to the master: the reals' default route. */
  readonly virtualIp: string;
  readonly prefixLength: number;
  readonly virtualRouterId: number;
  /** 1..254: the higher one wins. */
  readonly priority: number;
  readonly initialState: 'MASTER' | 'BACKUP';
  /** Seconds between adverts; fractions need VRRP version 3 (set below). */
  readonly advertIntervalS: number;
  /**
   * How keepalived tells natlb: "script" runs `command` on every transition with TYPE NAME STATE
   * PRIORITY appended (notify); "fifo" writes the same notices to the FIFO `fifo` and runs `command`
   * once, with the FIFO's path appended, to read them (vrrp_notify_fifo, vrrp_notify_fifo_script).
   */
  readonly notify: { readonly via: 'script'; readonly command: readonly string[] } | { readonly via: 'fifo'; readonly command: readonly string[]; readonly fifo: string };
  /** Names the instance in logs and the router id. */
  readonly name: string;
}

/**
 * keepalived.conf text. script_user root with enable_script_security: keepalived then runs the notify
 * command only when neither it nor its directories are writable by anyone but root.
 */
export function keepalivedConf(o: VrrpInstanceOptions): string {
  const quoted = o.notify.command.map((part) => (/[\s"]/.test(part) ? `'${part}'` : part)).join(' ');
  const fifo = o.notify.via === 'fifo' ? `  vrrp_notify_fifo ${o.notify.fifo}\n  vrrp_notify_fifo_script "${quoted}"\n` : '';
  return `global_defs {
  router_id ${o.name}
  script_user root
  enable_script_security
  vrrp_version 3
  vrrp_garp_master_repeat 3
  vrrp_garp_master_delay 1
${fifo}}

vrrp_instance ${o.name} {
  state ${o.initialState}
  interface ${o.interface}
  virtual_router_id ${o.virtualRouterId}
  priority ${o.priority}
  advert_int ${o.advertIntervalS}
  unicast_src_ip ${o.sourceIp}
  unicast_peer {
    ${o.peerIp}
  }
  virtual_ipaddress {
    ${o.virtualIp}/${o.prefixLength} dev ${o.interface}
  }
${o.notify.via === 'script' ? `  notify "${quoted}"\n` : ''}}
`;
}

export interface KeepalivedFiles {
  readonly config: string;
  readonly pid: string;
  readonly vrrpPid: string;
}

/** Writes the config into `dir` and names the pid files there. */
export function writeKeepalivedFiles(dir: string, options: VrrpInstanceOptions): KeepalivedFiles {
  const files = { config: join(dir, 'keepalived.conf'), pid: join(dir, 'keepalived.pid'), vrrpPid: join(dir, 'vrrp.pid') };
  writeFileSync(files.config, keepalivedConf(options), { mode: 0o600 });
  return files;
}

/** keepalived's arguments: VRRP only, in the foreground, logging to the console (the test keeps the log). */
export function keepalivedArgs(files: KeepalivedFiles): string[] {
  return ['--dont-fork', '--log-console', '--log-detail', '--vrrp', '--use-file', files.config, '--pid', files.pid, '--vrrp_pid', files.vrrpPid];
}

/** A keepalived started in a lab namespace, with its console output kept. */
export interface KeepalivedProcess {
  readonly child: ChildProcess;
  output(): string;
}

export function keepalivedProcess(child: ChildProcess): KeepalivedProcess {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}
