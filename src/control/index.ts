export { startControlServer } from "./server";
export type { ControlHandler, ControlHandlers, ControlRequest, ControlServer } from "./server";
export { ControlClient, requestControl, DEFAULT_CONTROL_TIMEOUT_MS } from "./client";
export type { ControlClientOptions, ControlRequestOptions } from "./client";
export { CONTROL_ROUTES, toJson, isControlErrorBody } from "./protocol";
export type { ControlErrorBody, HttpMethod, RouteKey } from "./protocol";
export { defaultSocketPath, netnsInode, SOCKET_DIR, MAX_SOCKET_PATH_BYTES } from "./socketPath";
