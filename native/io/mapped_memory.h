// RAII ownership of an mmap()ed region.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <utility>

namespace natlb::io {

class MappedMemory {
 public:
  MappedMemory() = default;
  MappedMemory(void* address, size_t length) : address_(address), length_(length) {}
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  MappedMemory(MappedMemory&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  MappedMemory& operator=(MappedMemory&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  ~MappedMemory() { reset(); }

  uint8_t* bytes() const { return static_cast<uint8_t*>(address_); }
  size_t length() const { return length_; }
  void reset() {
    if (address_ != nullptr) ::munmap(address_, length_);
    address_ = nullptr;
    length_ = 0;
  }

 private:
  void* address_ = nullptr;
  size_t length_ = 0;
};

}  // namespace natlb::io
