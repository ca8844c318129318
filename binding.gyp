{
  "targets": [
    {
      "target_name": "natlb",
      "sources": [
        "native/addon.cc",
        "native/packet/ipv4_frame.cc",
        "native/packet/nat_rewrite.cc",
        "native/packet/arp.cc",
        "native/packet/icmp.cc",
        "native/packet/tcp_coalesce.cc",
        "native/io/socket_filter.cc",
        "native/io/rx_ring.cc",
        "native/io/frame_sender.cc",
        "native/flow/flow_table.cc",
        "native/engine/service_table.cc",
        "native/engine/route_table.cc",
        "native/engine/neighbour_cache.cc",
        "native/engine/worker.cc",
        "native/engine/engine.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-fexceptions"]
    }
  ]
}
