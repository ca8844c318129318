// What the engine reads of an interface by name through ioctls: its MTU and receive queues.
#pragma once
#include <cstdint>
#include <string>

namespace natlb::io {

// The interface's MTU; 1500 when it cannot be read.
uint32_t interfaceMtu(const std::string& interfaceName);
// Receive queues of an interface (ethtool channels); 1 when the driver does not say.
uint32_t receiveQueueCount(const std::string& interfaceName);

}  // namespace natlb::io
