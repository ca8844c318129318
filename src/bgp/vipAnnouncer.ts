// Keeps BIRD announcing exactly the VIPs natlb serves (config bgp): the balancer says which VIPs have
// somewhere to send new connections (follow), and the announcer writes the routes file and asks BIRD
// to reconfigure, one step at a time; a failed step (BIRD not up yet, say) is retried every second
// until it succeeds or natlb stops. Stopping withdraws every VIP, within a bounded time.
import type { Logger } from "../log";
import { birdCommand } from "./birdControl";
import { writeVipRoutes } from "./vipRoutes";

export interface BgpConfig {
  /** BIRD's control socket (bird -s; Debian: /run/bird/bird.ctl). */
  readonly birdSocket: string;
  /** The file natlb writes, which BIRD's `protocol static` includes. */
  readonly routesFile: string;
  /** At stop, forwarding goes on this long after BIRD took the withdrawal (the router's time to learn it). */
  readonly withdrawGraceMs: number;
}

export interface BgpStatus {
  readonly birdSocket: string;
  readonly routesFile: string;
  /** The VIPs BIRD was last told to announce. */
  readonly announced: string[];
  /** VIPs natlb wants announced and BIRD does not have yet (a step under way or failing). */
  readonly pending: string[];
  /** VIPs whose announcement began / ended, counted when BIRD accepted the change. */
  readonly announcements: number;
  readonly withdrawals: number;
  /** Steps BIRD refused, or that could not reach it. */
  readonly failures: number;
  readonly lastError?: string;
}

export interface VipAnnouncerOptions {
  readonly logger: Logger;
  /** Called once BIRD has taken a change, per VIP. */
  readonly onChange?: (vip: string, announced: boolean) => void;
  /** Between failed steps. Default 1000 ms. */
  readonly retryMs?: number;
}

/** How long stop() waits for BIRD to take the withdrawal. */
const STOP_DEADLINE_MS = 5000;

export class VipAnnouncer {
  private wanted: string[] = [];
  private announced: string[] = [];
  private announcements = 0;
  private withdrawals = 0;
  private failures = 0;
  private lastError: string | undefined;
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The routes file has never been written by this process: the first step writes it whatever it holds. */
  private written = false;

  constructor(
    readonly config: BgpConfig,
    private readonly options: VipAnnouncerOptions,
  ) {}

  /** Announce exactly these VIPs (from now on, as soon as BIRD takes it). */
  follow(vips: Iterable<string>): void {
    if (this.stopped) return;
    this.wanted = [...new Set(vips)].sort();
    this.kick();
  }

  status(): BgpStatus {
    return {
      birdSocket: this.config.birdSocket,
      routesFile: this.config.routesFile,
      announced: [...this.announced],
      pending: this.wanted.filter((vip) => !this.announced.includes(vip)),
      announcements: this.announcements,
      withdrawals: this.withdrawals,
      failures: this.failures,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  /**
   * Withdraws every VIP (no retry after this); resolves when BIRD took it and the grace after it
   * (withdrawGraceMs) has passed, or after the deadline.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wanted = [];
    await this.running;
    if (this.written && this.announced.length === 0) return;
    const hadAnnounced = this.announced.length > 0;
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (deadline = setTimeout(resolve, STOP_DEADLINE_MS)));
    await Promise.race([this.step().catch(() => undefined), timedOut]);
    clearTimeout(deadline);
    if (hadAnnounced && this.announced.length === 0 && this.config.withdrawGraceMs > 0) {
      // The instance still forwards what reaches it while BIRD tells the router.
      await new Promise((resolve) => setTimeout(resolve, this.config.withdrawGraceMs));
    }
    if (this.announced.length > 0) {
      this.options.logger.error(
        { vips: this.announced, birdSocket: this.config.birdSocket, error: this.lastError },
        `BIRD still announces ${this.announced.join(", ")}: empty ${this.config.routesFile} and run \`birdc configure\``,
      );
    }
  }

  private kick(): void {
    if (this.stopped || this.running || this.retryTimer) return;
    if (this.written && sameList(this.wanted, this.announced)) return;
    this.running = this.step()
      .catch(() => {
        if (this.stopped) return;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, this.options.retryMs ?? 1000);
        this.retryTimer.unref();
      })
      .finally(() => {
        this.running = undefined;
        if (!this.retryTimer) this.kick();  // the wanted set moved on while BIRD reconfigured
      });
  }

  /** Writes the wanted VIPs and has BIRD read them. */
  private async step(): Promise<void> {
    const target = [...this.wanted];
    try {
      await writeVipRoutes(this.config.routesFile, target);
      this.written = true;
      await birdCommand(this.config.birdSocket, "configure");
    } catch (error) {
      const message = (error as Error).message;
      if (this.failures === 0 || message !== this.lastError) this.options.logger.warn({ err: error }, `announcing the VIPs through BIRD failed (retrying): ${message}`);
      this.failures++;
      this.lastError = message;
      throw error;
    }
    const before = new Set(this.announced);
    const after = new Set(target);
    this.announced = target;
    this.lastError = undefined;
    for (const vip of target) if (!before.has(vip)) this.changed(vip, true);
    for (const vip of before) if (!after.has(vip)) this.changed(vip, false);
  }

  private changed(vip: string, announced: boolean): void {
    if (announced) this.announcements++;
    else this.withdrawals++;
    this.options.logger.info({ vip, birdSocket: this.config.birdSocket }, announced ? "VIP announced through BIRD" : "VIP withdrawn through BIRD");
    this.options.onChange?.(vip, announced);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
