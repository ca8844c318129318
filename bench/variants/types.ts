// What every compared path through the gateway looks like to the benchmark: set up in a lab, give
// the client its targets, name its process (if it has one), tear down to nothing.
import type { Endpoint } from "../../lab/benchTools";
import type { Lab } from "../../lab/topology";

import type { LabKind } from "../options";

export type VariantId =
  | "plain"
  | "kernelNat"
  | "haproxy"
  | "nodeProxy"
  | "natlb"
  | "natlbUserSpace"
  | "natlbAfPacket"
  | "natlbThreadPerInterface"
  | "natlbDr"
  | "natlbFullnat";

/** The services every balancing variant offers, each VIP:vport -> every real at realPort. */
export interface BenchServices {
  vip: string;
  /** Large downloads: VIP:80 -> reals:8080 (blob servers). */
  bulk: { vport: number; realPort: number };
  /** Short connections: VIP:81 -> reals:8081 (tiny-response servers). */
  small: { vport: number; realPort: number };
  /** UDP requests: VIP:53 -> reals:5353 (UDP echo servers). Only the flood lab offers it. */
  udp?: { vport: number; realPort: number };
  /** Real server addresses, r1 first. */
  reals: string[];
}

export interface ActiveVariant {
  /** Where the client connects for large downloads (connection i goes to target i % length). */
  bulkTargets: Endpoint[];
  /** Where the client connects for short connections. */
  smallTargets: Endpoint[];
  /** The balancer's process, for CPU and memory; null for kernel-only paths. */
  pid: number | null;
  /** The natlb daemon's control socket (natlb variants only): the progress line shows its reals' shares. */
  controlSocket?: string;
  /** Anything worth keeping about this run (counters, drops), read just before tearDown. */
  diagnostics(): Promise<Record<string, unknown>>;
  /** Removes every process, rule, route and address the variant added. */
  tearDown(): Promise<void>;
}

export interface Variant {
  readonly id: VariantId;
  readonly label: string;
  /** Runs only in these labs (default: every lab). */
  readonly labs?: readonly LabKind[];
  setUp(lab: Lab, services: BenchServices): Promise<ActiveVariant>;
  /**
   * Why this variant cannot run with this build (e.g. natlb refuses its configuration), or null; asked
   * once before the labs, so the report lists the variant as "not available: <why>" instead of failing.
   */
  unavailable?(services: BenchServices): Promise<string | null>;
}

/**
 * Thrown by setUp when the variant cannot run in this lab with this build (e.g. natlb refuses its
 * configuration there): the report lists it as not available instead of counting an error, and the
 * lab's later rounds leave it out.
 */
export class VariantUnavailableError extends Error {
  override readonly name = "VariantUnavailableError";
}
