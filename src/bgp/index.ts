export { birdCommand, type BirdReply } from "./birdControl";
export { VipAnnouncer, type BgpConfig, type BgpStatus, type VipAnnouncerOptions } from "./vipAnnouncer";
export { vipRoutesText, writeVipRoutes } from "./vipRoutes";
