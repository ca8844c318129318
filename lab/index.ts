// The network-namespace lab: topology, command helpers and traffic tools (see topology.ts).
export * from './labAddresses';
export * from './netns';
export * from './topology';
export { LabTimeoutError, sleep, waitUntil, withTimeout } from './wait';
export * from './blobContent';
export * from './blobServer';
export * from './download';
export * from './udpEcho';
export * from './flood';
export * from './pacedProbes';
export * from './ipv4Cidr';
export * from './capture';
export * from './packetDecode';
export * from './checksum';
export { ToolError, ToolProcess, type ToolEvent, type ToolExit } from './toolProcess';
