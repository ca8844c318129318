// Known-answer frames produced by Linux itself (captured with tcpdump on a veth in a throw-away netns,
// 198.18.50.1 -> 198.18.50.2): they check the reference checksum code against the kernel.

/** UDP, `ethtool -K tx off` on the sender: IPv4 checksum 0xd22a, complete UDP checksum 0xb48f. */
export const KERNEL_UDP_COMPLETE =
  "a273c0c78e5846c04c6af111080045000029787140004011d22ac6123201c61232029c4114e90015b48f68656c6c6f206e61746c622121";

/** UDP, tx checksum offload on (CHECKSUM_PARTIAL): the field holds the pseudo-header seed 0xf04d. */
export const KERNEL_UDP_PARTIAL =
  "a273c0c78e5846c04c6af111080045000028788040004011d21cc6123201c61232029c4214e90014f04d7061727469616c207564702e";

/** TCP SYN with options, tx checksum offload on: seed 0xf056 (the complete checksum would be 0x40eb). */
export const KERNEL_TCP_SYN_PARTIAL =
  "a273c0c78e5846c04c6af11108004500003c1b0b400040062f89c6123201c6123202bef21f901e4475b500000000a002faf0f0560000020405b40402080ab7ccf1af000000000103030a";
