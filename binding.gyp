{
  "targets": [
    {
      "target_name": "natlb",
      "sources": [
        "native/addon.cc",
        "native/test_surface.cc",
        "native/service_values.cc",
        "native/sync_values.cc",
        "native/packet/ipv4_frame.cc",
        "native/packet/nat_rewrite.cc",
        "native/packet/arp.cc",
        "native/packet/icmp.cc",
        "native/packet/tcp_coalesce.cc",
        "native/packet/checksum_state.cc",
        "native/packet/tcp_header.cc",
        "native/packet/claim_signal.cc",
        "native/packet/icmp_error.cc",
        "native/packet/tcp_reset.cc",
        "native/io/socket_filter.cc",
        "native/io/rx_ring.cc",
        "native/io/frame_sender.cc",
        "native/io/xsk_socket.cc",
        "native/io/xdp_steering.cc",
        "native/io/xdp_receiver.cc",
        "native/io/kernel_forwarding.cc",
        "native/io/bpf_object.cc",
        "native/io/control_frame_socket.cc",
        "native/io/interface_properties.cc",
        "native/io/peer_credentials.cc",
        "native/flow/flow_table.cc",
        "native/flow/persistence_templates.cc",
        "native/engine/service_table.cc",
        "native/engine/timeout_profile_assignment.cc",
        "native/engine/route_table.cc",
        "native/engine/neighbour_cache.cc",
        "native/engine/worker.cc",
        "native/engine/interface_receiver.cc",
        "native/engine/engine.cc",
        "native/engine/kernel_offload.cc",
        "native/engine/kernel_scheduled_flows.cc",
        "native/engine/reply_claims_signaller.cc",
        "native/engine/frames_awaiting_neighbour.cc",
        "native/sync/sync_message.cc",
        "native/sync/sync_socket.cc",
        "native/sync/flow_sync.cc"
      ],
      "actions": [
        {
          "action_name": "steer_to_socket_program",
          "inputs": ["native/bpf/steer_to_socket.bpf.c", "native/bpf/kernel_flows_map.bpf.h", "native/bpf/kernel_flow.h", "native/bpf/build_program.mjs"],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/natlb/steer_to_socket_object.h"],
          "action": ["node", "native/bpf/build_program.mjs", "steer_to_socket.bpf.c", "<(SHARED_INTERMEDIATE_DIR)/natlb/steer_to_socket_object.h", "kSteerToSocketObject"]
        },
        {
          "action_name": "forward_established_program",
          "inputs": ["native/bpf/forward_established.bpf.c", "native/bpf/kernel_flows_map.bpf.h", "native/bpf/kernel_flow.h", "native/bpf/build_program.mjs"],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/natlb/forward_established_object.h"],
          "action": ["node", "native/bpf/build_program.mjs", "forward_established.bpf.c", "<(SHARED_INTERMEDIATE_DIR)/natlb/forward_established_object.h", "kForwardEstablishedObject"]
        }
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<(SHARED_INTERMEDIATE_DIR)/natlb"],
      "libraries": ["-lbpf", "-lcrypto"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-fexceptions"]
    }
  ]
}
