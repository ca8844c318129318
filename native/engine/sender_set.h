// One FrameSender per engine interface, owned by one thread (a worker or the housekeeper). A worker's
// frames carry the claim mark: each claims its flow's replies in the kernel's list (flow/reply_claims.h).
// The housekeeper's (ARP, resets for ending flows) claim nothing.
#pragma once
#include <memory>
#include <vector>

#include "../flow/reply_claims.h"
#include "../io/frame_sender.h"
#include "engine_context.h"

namespace natlb::engine {

class SenderSet {
 public:
  enum class Claims : uint8_t { Replies, Nothing };
  SenderSet(const std::vector<InterfaceConfig>& interfaces, bool coalesceTcp, Claims claims) {
    const uint32_t mark = claims == Claims::Replies ? flow::kClaimMark : 0;
    for (const InterfaceConfig& i : interfaces) {
      senders_.push_back({i.ifindex, std::make_unique<io::FrameSender>(i.ifindex, coalesceTcp, mark)});
    }
  }
  io::FrameSender* find(int ifindex) {
    for (auto& [index, sender] : senders_) {
      if (index == ifindex) return sender.get();
    }
    return nullptr;
  }
  template <typename Visit>
  void forEach(Visit visit) {
    for (auto& [index, sender] : senders_) visit(*sender);
  }

 private:
  std::vector<std::pair<int, std::unique_ptr<io::FrameSender>>> senders_;
};

}  // namespace natlb::engine
