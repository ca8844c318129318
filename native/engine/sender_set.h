// One FrameSender per engine interface, owned by one thread (a worker or the housekeeper).
#pragma once
#include <memory>
#include <vector>

#include "../io/frame_sender.h"
#include "engine_context.h"

namespace natlb::engine {

class SenderSet {
 public:
  SenderSet(const std::vector<InterfaceConfig>& interfaces, bool coalesceTcp) {
    for (const InterfaceConfig& i : interfaces) {
      senders_.push_back({i.ifindex, std::make_unique<io::FrameSender>(i.ifindex, coalesceTcp)});
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
