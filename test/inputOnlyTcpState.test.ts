// A direct-routing flow's TCP state from the client's segments alone: IPVS's input-only table
// (ip_vs_proto_tcp.c), reduced to natlb's states, through the addon.
import test from "ava";
import { loadNative, type InputOnlyTcpState } from "../src/native";

const { packet } = loadNative();
const [FIN, SYN, RST, ACK] = [0x01, 0x02, 0x04, 0x10];

// Each row: state, flags, the state IPVS's input-only table gives (natlb's states never go back).
const table: Array<[InputOnlyTcpState, number, InputOnlyTcpState]> = [
  ["SYN_RECV", ACK, "ESTABLISHED"],
  ["SYN_RECV", SYN, "SYN_RECV"],
  ["SYN_RECV", RST, "SYN_RECV"], // a stray RST in the handshake does not end it
  ["SYN_RECV", FIN | ACK, "TIME_WAIT"],
  ["ESTABLISHED", ACK, "ESTABLISHED"],
  ["ESTABLISHED", FIN | ACK, "FIN_WAIT"],
  ["ESTABLISHED", RST, "CLOSE"],
  ["ESTABLISHED", RST | ACK, "CLOSE"],
  ["FIN_WAIT", ACK, "FIN_WAIT"], // the real's FIN is never seen: no TIME_WAIT from here
  ["FIN_WAIT", FIN | ACK, "FIN_WAIT"],
  ["FIN_WAIT", RST, "CLOSE"],
  ["TIME_WAIT", ACK, "TIME_WAIT"],
  ["CLOSE", ACK, "CLOSE"],
];

for (const [state, flags, next] of table) {
  test(`${state} + flags 0x${flags.toString(16)} -> ${next}`, (t) => {
    t.is(packet.inputOnlyTcpState(state, flags), next);
  });
}

test("an unknown state is refused", (t) => {
  t.throws(() => packet.inputOnlyTcpState("LISTEN" as InputOnlyTcpState, ACK), { message: /state must be/ });
});
