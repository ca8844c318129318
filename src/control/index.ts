export { startControlServer, StreamAnswer, TextAnswer, DEFAULT_CONTROL_LIMITS } from "./server";
export type { ControlHandler, ControlHandlers, ControlLimits, ControlRequest, ControlServer, ControlServerOptions } from "./server";
export { roleNeeded, roleOf, type AccessPolicy, type Role } from "./roles";
export { ControlClient, requestControl, DEFAULT_CONTROL_TIMEOUT_MS } from "./client";
export { watchEvents } from "./eventsClient";
export type { ControlClientOptions, ControlRequestOptions } from "./client";
export { CONTROL_ROUTES, toJson, isControlErrorBody } from "./protocol";
export type { ControlErrorBody, HttpMethod, RouteKey } from "./protocol";
export { defaultSocketPath, netnsInode, SOCKET_DIR, MAX_SOCKET_PATH_BYTES } from "./socketPath";
