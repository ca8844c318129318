// The gateway's part in an active/backup pair (config `ha`, driven by keepalived's notify scripts).
// The master answers ARP for the VIPs and announces them; a backup or a gateway in fault stays silent
// on the client side but forwards whatever still reaches it, with the flows sync gave it. Without an
// `ha` block natlb is a master: what it always was.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace natlb::engine {

enum class GatewayRole : uint8_t { Master, Backup, Fault };

constexpr std::string_view gatewayRoleName(GatewayRole role) {
  switch (role) {
    case GatewayRole::Master: return "master";
    case GatewayRole::Backup: return "backup";
    case GatewayRole::Fault: return "fault";
  }
  return "master";
}

constexpr std::optional<GatewayRole> gatewayRoleNamed(std::string_view name) {
  for (GatewayRole role : {GatewayRole::Master, GatewayRole::Backup, GatewayRole::Fault}) {
    if (gatewayRoleName(role) == name) return role;
  }
  return std::nullopt;
}

// Gratuitous ARP when a gateway becomes master: `rounds` announcements of every VIP, `intervalMs`
// apart (keepalived's garp_master_repeat), so a switch or client that missed one still learns.
struct TakeoverAnnouncement {
  uint32_t rounds = 3;
  uint32_t intervalMs = 100;
};

}  // namespace natlb::engine
