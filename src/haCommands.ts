// `natlb ha master|backup|fault` and `natlb ha notify`: the role of this gateway in an active/backup
// pair (config `ha`), set over the control socket. keepalived decides the role (VRRP); its notify
// script is `natlb ha notify`, which takes keepalived's own arguments (TYPE NAME STATE PRIORITY), or
// its vrrp_notify_fifo_script is `natlb ha notify-fifo`, which follows the same notices in order from
// keepalived's FIFO without starting a process per transition.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { addClientOptions, askDaemon, printResult, withExamples, type ClientOptions } from "./cliSupport";
import { noticeText, parseKeepalivedNotify, parseNotifyFifoLine } from "./ha/keepalivedNotify";
import { GATEWAY_ROLES, type GatewayRole } from "./native";

const ROLE_DESCRIPTIONS: Readonly<Record<GatewayRole, string>> = Object.freeze({
  master: "answer ARP for the VIPs and announce them with gratuitous ARP: this gateway takes the traffic",
  backup: "answer no ARP for the VIPs and announce nothing; forward what still reaches it, with the synced flows",
  fault: "like backup: keepalived no longer stands behind this gateway",
});

async function setRole(options: ClientOptions, role: GatewayRole, reason: string | undefined): Promise<void> {
  const answer = (await askDaemon(options, "POST /ha", { role, ...(reason !== undefined ? { reason } : {}) })) as {
    previous?: string;
    changed?: boolean;
  };
  printResult(options.json, { ...answer, action: `ha ${role}`, ...(reason !== undefined ? { reason } : {}) }, () =>
    answer.changed ? `natlb: ha role ${answer.previous} -> ${role}` : `natlb: ha role already ${role}`,
  );
}

export function addHaCommands(program: Command): void {
  const ha = withExamples(
    program
      .command("ha")
      .description("this gateway's role in an active/backup pair run by keepalived (config \"ha\"; README: High availability)"),
    "natlb ha master --config /etc/natlb/natlb.json",
    "natlb ha notify --config /etc/natlb/natlb.json INSTANCE VI_1 MASTER 100   # as keepalived runs its notify script",
  );
  for (const role of GATEWAY_ROLES) {
    withExamples(addClientOptions(ha.command(role).description(ROLE_DESCRIPTIONS[role])), `natlb ha ${role} --config /etc/natlb/natlb.json`).action(
      (options: ClientOptions) => setRole(options, role, undefined),
    );
  }
  withExamples(
    addClientOptions(
      ha
        .command("notify")
        .description(
          "keepalived's notify script: takes the arguments keepalived appends (TYPE NAME STATE PRIORITY) and sets the role its STATE means (MASTER: master; BACKUP: backup; FAULT, STOP, DELETED: fault)",
        )
        .argument("<type>", "INSTANCE or GROUP")
        .argument("<name>", "the vrrp_instance or vrrp_sync_group")
        .argument("<state>", "MASTER, BACKUP, FAULT, STOP or DELETED")
        .argument("[priority]", "the instance's priority"),
    ),
    "natlb ha notify --config /etc/natlb/natlb.json INSTANCE VI_1 MASTER 100",
  ).action((type: string, name: string, state: string, priority: string | undefined, options: ClientOptions) => {
    const notice = parseKeepalivedNotify([type, name, state, ...(priority !== undefined ? [priority] : [])]);
    return setRole(options, notice.role, noticeText(notice));
  });
  withExamples(
    addClientOptions(
      ha
        .command("notify-fifo")
        .description(
          "keepalived's vrrp_notify_fifo_script: reads keepalived's notices (INSTANCE \"VI_1\" MASTER 100) from the FIFO keepalived names as the last argument, in order, and sets each one's role, until keepalived closes the FIFO or stops the script; a notice natlb refuses is reported on stderr and the next one is read",
        )
        .argument("<fifo>", "the FIFO (keepalived's vrrp_notify_fifo) that keepalived appends"),
    ),
    "natlb ha notify-fifo --config /etc/natlb/natlb.json /run/keepalived/natlb.fifo   # as keepalived runs it from vrrp_notify_fifo_script",
  ).action(async (fifo: string, options: ClientOptions) => {
    const lines = createInterface({ input: createReadStream(fifo), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim() === "") continue;
      try {
        const notice = parseNotifyFifoLine(line);
        if (notice !== undefined) await setRole(options, notice.role, noticeText(notice));
      } catch (error) {
        process.stderr.write(`natlb ha notify-fifo: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
  });
}
