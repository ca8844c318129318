// The kernel set-up (the CAP_NET_ADMIN step) and the ownership table it installs.
export { KernelSetup, NATLB_ROUTE_PROTOCOL, mergePlans, planFor, removeNatlbKernelState, type KernelPlan } from "./setup";
export { OWNERSHIP_TABLE, ownershipRuleset, type OwnershipPlan, type ReplyClaimFacts } from "./ownershipRuleset";
