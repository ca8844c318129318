// This gateway's role in an active/backup pair (config `ha`): what keepalived's notify script or an
// operator last said, handed to the data plane as one atomic the workers read per batch
// (native/engine/gateway_role.h). The control plane keeps when and why it changed, for status,
// metrics and the event stream. Without an `ha` block there is none: a lone gateway is master for good
// (what natlb always was).
import type { HaConfig } from "../config";
import type { GatewayRole, NativeEngine } from "../native";

export interface HaStatus {
  /** "master" answers ARP for the VIPs and announces them; "backup" and "fault" stay silent and forward what reaches them. */
  readonly role: GatewayRole;
  /** When this role began (ISO 8601). */
  readonly since: string;
  /** Role changes since start. */
  readonly transitions: number;
  /** Who set the role last: the config's initialRole, `natlb ha`, or keepalived's notify arguments. */
  readonly reason: string;
}

export interface RoleChange {
  readonly previous: GatewayRole;
  readonly role: GatewayRole;
  readonly changed: boolean;
}

export class PairRole {
  private role: GatewayRole;
  private since = new Date();
  private transitions = 0;
  private reason: string;

  /** Sets the engine's role before it starts: a backup must not announce the VIPs at start. */
  constructor(
    private readonly engine: Pick<NativeEngine, "setGatewayRole">,
    private config: HaConfig,
  ) {
    this.role = config.initialRole;
    this.reason = "config ha.initialRole";
    this.engine.setGatewayRole(this.role, this.announcement());
  }

  /** A reload's `ha` block: its announcement settings apply from the next takeover (the role stays). */
  reconfigure(config: HaConfig): void {
    this.config = config;
  }

  get current(): GatewayRole {
    return this.role;
  }

  /** Hands `role` to the data plane; the same role again changes nothing (keepalived repeats itself). */
  apply(role: GatewayRole, reason: string): RoleChange {
    const previous = this.role;
    if (role === previous) return { previous, role, changed: false };
    this.engine.setGatewayRole(role, this.announcement());
    this.role = role;
    this.since = new Date();
    this.transitions += 1;
    this.reason = reason;
    return { previous, role, changed: true };
  }

  status(): HaStatus {
    return { role: this.role, since: this.since.toISOString(), transitions: this.transitions, reason: this.reason };
  }

  private announcement(): { rounds: number; intervalMs: number } {
    return { rounds: this.config.gratuitousArpRounds, intervalMs: this.config.gratuitousArpIntervalMs };
  }
}
