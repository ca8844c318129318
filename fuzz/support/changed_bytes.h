// "The function wrote only these bytes": compares a frame before and after, byte for byte, outside a
// set of offsets that may change.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "invariant.h"

namespace natlb::fuzz {

class AllowedChanges {
 public:
  explicit AllowedChanges(size_t frameLength) : allowed_(frameLength, false) {}
  // [offset, offset + length) may change; parts past the frame are ignored (the caller's checks on
  // the fields' values fail on their own if the function wrote there).
  void allow(size_t offset, size_t length) {
    for (size_t i = offset; i < offset + length && i < allowed_.size(); ++i) allowed_[i] = true;
  }
  void requireOthersUnchanged(const uint8_t* before, const uint8_t* after, const char* what) const {
    for (size_t i = 0; i < allowed_.size(); ++i) {
      if (!allowed_[i]) require(before[i] == after[i], what);
    }
  }

 private:
  std::vector<bool> allowed_;
};

}  // namespace natlb::fuzz
