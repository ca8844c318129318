// Reads a harness's parameters off the front of a fuzz input; what is left is the frame. Short inputs
// read as zeros, so every input is usable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace natlb::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  uint16_t u16() { return uint16_t(byte() << 8 | byte()); }
  uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
  size_t remaining() const { return size_ - at_; }
  // The next `length` bytes (at most what remains).
  const uint8_t* take(size_t& length) {
    if (length > remaining()) length = remaining();
    const uint8_t* p = data_ + at_;
    at_ += length;
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// A heap copy of exactly `length` bytes, so ASan reports any access past the frame's end.
struct ExactBuffer {
  ExactBuffer(const uint8_t* bytes, size_t length) : data(new uint8_t[length ? length : 1]), size(length) {
    if (length) std::memcpy(data.get(), bytes, length);
  }
  explicit ExactBuffer(size_t length) : data(new uint8_t[length ? length : 1]()), size(length) {}
  std::unique_ptr<uint8_t[]> data;
  size_t size;
  uint8_t* get() const { return data.get(); }
};

}  // namespace natlb::fuzz
