// The flow map seen from TypeScript: the SharedArrayBuffer the native workers write, read directly
// through typed arrays (no call into native code per listing). The layout comes from the addon
// (native/flow/flow_layout.h is its one definition).
import { formatIPv4 } from "../addresses";
import { loadNative, type FlowLayout } from "../native";
import type { ConnectionPage, FlowFilter } from "./connectionQuery";

export type FlowStateName = "NONE" | "SYN_RECV" | "ESTABLISHED" | "FIN_WAIT" | "TIME_WAIT" | "CLOSE" | "UDP";

export interface Connection {
  protocol: "tcp" | "udp";
  state: FlowStateName;
  client: { ip: string; port: number };
  vip: { ip: string; port: number };
  real: { ip: string; port: number; id: number };
  /** Milliseconds since the last packet in either direction. */
  idleMs: number;
  ageMs: number;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /**
   * Only for a persistence template (listed when asked for, like ipvsadm -Lc shows them): the flows it
   * controls and the seconds it outlives the last of them. Its client is the masked address, port 0.
   */
  template?: { controlledFlows: number; timeoutS: number };
  /** Only for a full-NAT flow: natlb's local address and port, the client as the real sees it. */
  local?: { ip: string; port: number };
  /** Only for a flow picked up mid-stream (service midStreamPickUp): it began on another instance. */
  pickedUp?: true;
  /** Only for a flow a peer synced to this instance (config sync): it was applied, not made here. */
  synced?: true;
  /** Only for a flow the kernel fast path scheduled itself (its SYN, FINs and data never reached user space). */
  kernelScheduled?: true;
}

/** A real's live flows (FlowMap.realCounts), and the persistence templates that hold it (no connections). */
export interface RealCounts {
  active: number;
  inactive: number;
  templates: number;
}

export interface FlowMapStats {
  capacity: number;
  live: number;
  inserted: number;
  expired: number;
  fullDrops: number;
  /** Flows that have not proven themselves yet (config floodProtection), by class. */
  unassured: { halfOpenTcp: number; udp: number };
  /** What the flood defences removed: evicted because the class held its share, or to make room in a full map. */
  evicted: { halfOpenTcpShare: number; udpShare: number; halfOpenTcpRoom: number; udpRoom: number };
  /** Unassured flows expired by the short timeout while the map was under pressure. */
  expiredUnderPressure: number;
}

const PROTOCOL_TCP = 6;

export class FlowMap {
  readonly capacity: number;
  readonly buffer: SharedArrayBuffer;
  /** The view handed to the native engine. */
  readonly bytes: Uint8Array;
  private readonly layout: FlowLayout;
  private readonly view: DataView;
  private readonly entriesOffset: number;

  constructor(capacity: number) {
    const native = loadNative();
    this.layout = native.flowLayout();
    if (!Number.isInteger(capacity) || capacity < this.layout.minCapacity || capacity > this.layout.maxCapacity) {
      throw new RangeError(
        `flow map capacity must be an integer ${this.layout.minCapacity}..${this.layout.maxCapacity}, got ${capacity}`,
      );
    }
    this.capacity = capacity;
    this.buffer = new SharedArrayBuffer(native.flowTableBytes(capacity));
    this.bytes = new Uint8Array(this.buffer);
    native.initializeFlowTable(this.bytes, capacity);
    this.view = new DataView(this.buffer);
    this.entriesOffset = this.buffer.byteLength - capacity * this.layout.entryBytes;
  }

  stats(): FlowMapStats {
    const h = this.layout.header;
    const u64 = (offset: number) => Number(this.view.getBigUint64(offset, true));
    return {
      capacity: this.capacity,
      live: this.view.getUint32(h.liveCount, true),
      inserted: u64(h.inserted),
      expired: u64(h.expired),
      fullDrops: u64(h.fullDrops),
      unassured: { halfOpenTcp: this.view.getUint32(h.halfOpenFlows, true), udp: this.view.getUint32(h.unassuredUdpFlows, true) },
      evicted: {
        halfOpenTcpShare: u64(h.evictedHalfOpenQuota),
        udpShare: u64(h.evictedUdpQuota),
        halfOpenTcpRoom: u64(h.evictedHalfOpenRoom),
        udpRoom: u64(h.evictedUdpRoom),
      },
      expiredUnderPressure: u64(h.expiredEarly),
    };
  }

  /**
   * A real's live flows as the data plane counts them (no walk of the map): `active` ESTABLISHED TCP,
   * `inactive` every other state, UDP included (ipvsadm's ActiveConn/InActConn).
   */
  realCounts(realId: number): RealCounts {
    const r = this.layout.realCounters;
    if (!Number.isInteger(realId) || realId < 0 || realId >= r.realIdCount) {
      throw new RangeError(`real id must be an integer 0..${r.realIdCount - 1}, got ${realId}`);
    }
    const base = r.offset + realId * r.bytesPerReal;
    return {
      active: this.view.getUint32(base + r.active, true),
      inactive: this.view.getUint32(base + r.inactive, true),
      templates: this.view.getUint32(base + r.templates, true),
    };
  }

  /** Every live connection (a consistent-enough snapshot: entries may change while being read). */
  connections(limit = Number.POSITIVE_INFINITY): Connection[] {
    const out: Connection[] = [];
    this.forEachLive((connection) => {
      out.push(connection);
      return out.length < limit;
    });
    return out;
  }

  /**
   * One page of the live connections that pass `filter`, in map order from entry `cursor` on: at most
   * `limit`, and the cursor of the next match when there is one. Filters compare raw fields, so a
   * skipped flow costs no object.
   */
  page(filter: FlowFilter, cursor: number, limit: number): ConnectionPage<Connection> {
    const connections: Connection[] = [];
    let next: number | undefined;
    this.forEachLive(
      (connection, index) => {
        if (connections.length === limit) {
          next = index;
          return false;
        }
        connections.push(connection);
        return true;
      },
      { from: cursor, filter },
    );
    return next === undefined ? { connections, more: false } : { connections, more: true, next };
  }

  private sum(base: number, userSpace: number, kernel: number): number {
    return Number(this.view.getBigUint64(base + userSpace, true) + this.view.getBigUint64(base + kernel, true));
  }

  private passes(base: number, f: FlowFilter): boolean {
    const e = this.layout.entry;
    const v = this.view;
    return (
      (f.protocol === undefined || v.getUint8(base + e.protocol) === f.protocol) &&
      (f.vip === undefined || v.getUint32(base + e.vip, true) === f.vip) &&
      (f.vport === undefined || v.getUint16(base + e.vport, true) === f.vport) &&
      (f.realIp === undefined || v.getUint32(base + e.realIp, true) === f.realIp) &&
      (f.realPort === undefined || v.getUint16(base + e.realPort, true) === f.realPort) &&
      (f.clientNetwork === undefined || ((v.getUint32(base + e.clientIp, true) & (f.clientMask ?? 0xffffffff)) >>> 0) === f.clientNetwork) &&
      (f.clientPort === undefined || v.getUint16(base + e.clientPort, true) === f.clientPort) &&
      (f.state === undefined || v.getUint8(base + e.state) === f.state)
    );
  }

  /** Calls `visit` for each live connection (from entry `from`, passing `filter`) until it returns false. */
  forEachLive(visit: (connection: Connection, index: number) => boolean, options: { from?: number; filter?: FlowFilter } = {}): void {
    const e = this.layout.entry;
    const used = this.view.getUint32(this.layout.header.bumpAllocated, true);
    const now = loadNative().monotonicMs();
    for (let index = options.from ?? 0; index < used; index++) {
      const base = this.entriesOffset + index * this.layout.entryBytes;
      if (this.view.getUint32(base + e.status, true) !== 1) continue;
      const flags = this.view.getUint16(base + e.flags, true);
      const isTemplate = (flags & this.layout.flags.template) !== 0;
      if (isTemplate && options.filter?.templates !== true) continue;  // no connection (persistence)
      if (options.filter && !this.passes(base, options.filter)) continue;
      const lastSeen = Number(this.view.getBigUint64(base + e.lastSeenMs, true));
      const created = Number(this.view.getBigUint64(base + e.createdMs, true));
      const connection: Connection = {
        protocol: this.view.getUint8(base + e.protocol) === PROTOCOL_TCP ? "tcp" : "udp",
        state: (this.layout.states[this.view.getUint8(base + e.state)] ?? "NONE") as FlowStateName,
        client: { ip: formatIPv4(this.view.getUint32(base + e.clientIp, true)), port: this.view.getUint16(base + e.clientPort, true) },
        vip: { ip: formatIPv4(this.view.getUint32(base + e.vip, true)), port: this.view.getUint16(base + e.vport, true) },
        real: {
          ip: formatIPv4(this.view.getUint32(base + e.realIp, true)),
          port: this.view.getUint16(base + e.realPort, true),
          id: this.view.getUint16(base + e.realId, true),
        },
        idleMs: Math.max(0, now - lastSeen),
        ageMs: Math.max(0, now - created),
        // What user space forwarded plus what the kernel fast path did, for an offloaded flow.
        packetsIn: this.sum(base, e.packetsIn, e.kernelPacketsIn),
        bytesIn: this.sum(base, e.bytesIn, e.kernelBytesIn),
        packetsOut: this.sum(base, e.packetsOut, e.kernelPacketsOut),
        bytesOut: this.sum(base, e.bytesOut, e.kernelBytesOut),
        ...(isTemplate
          ? { template: { controlledFlows: this.view.getUint32(base + e.controlledFlows, true), timeoutS: this.view.getUint32(base + e.templateTimeoutS, true) } }
          : {}),
        ...((flags & this.layout.flags.fullNat) !== 0
          ? { local: { ip: formatIPv4(this.view.getUint32(base + e.localIp, true)), port: this.view.getUint16(base + e.localPort, true) } }
          : {}),
        ...((flags & this.layout.flags.pickedUp) !== 0 ? { pickedUp: true as const } : {}),
        ...((flags & this.layout.flags.kernelScheduled) !== 0 ? { kernelScheduled: true as const } : {}),
        // Its handshake was not seen here, and it was not picked up here: a peer synced it (flow_layout.h).
        ...((flags & (this.layout.flags.midStreamStart | this.layout.flags.pickedUp)) === this.layout.flags.midStreamStart
          ? { synced: true as const }
          : {}),
      };
      if (!visit(connection, index)) return;
    }
  }
}
