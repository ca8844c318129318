// The pure parts behind the CLI: exit statuses by error, JSON error reports, when --json is asked for,
// log-level resolution and the terminal log format.
import test from "ava";
import { CommanderError } from "commander";
import { errorReport, wantsJson } from "../src/cliSupport";
import { ApiError, ConfigError, ControlError, NatlbError, PrivilegeError } from "../src/errors";
import { EXIT_CODES, exitCodeFor } from "../src/exitCodes";
import { formatLogRecord, resolveLogLevel } from "../src/log";

test("exit status by error", (t) => {
  t.is(exitCodeFor(new ConfigError("services", "missing")), EXIT_CODES.config);
  t.is(exitCodeFor(new ControlError("E_CONTROL_NO_DAEMON", "/x", "none")), EXIT_CODES.noDaemon);
  t.is(exitCodeFor(new ControlError("E_CONTROL_ACCESS", "/x", "denied")), EXIT_CODES.permission);
  t.is(exitCodeFor(new ControlError("E_CONTROL_TIMEOUT", "/x", "slow")), EXIT_CODES.error);
  t.is(exitCodeFor(new ControlError("E_CONTROL_IN_USE", "/x", "busy")), EXIT_CODES.busy);
  t.is(exitCodeFor(new PrivilegeError("need CAP_NET_RAW")), EXIT_CODES.permission);
  t.is(exitCodeFor(new NatlbError("E_ALREADY_RUNNING", "one per namespace")), EXIT_CODES.busy);
  t.is(exitCodeFor(new ApiError("no such service", { status: 404, code: "E_NOT_FOUND" })), EXIT_CODES.refused);
  t.is(exitCodeFor(new ApiError("reload failed", { status: 500, code: "E_INTERNAL" })), EXIT_CODES.error);
  t.is(exitCodeFor(new Error("bug")), EXIT_CODES.error);
});

test("JSON error reports carry the code, the message and the exit status", (t) => {
  t.deepEqual(errorReport(new CommanderError(1, "commander.unknownOption", "error: unknown option '--x'")), {
    error: { code: "E_USAGE", message: "unknown option '--x'", exitCode: EXIT_CODES.usage },
  });
  t.deepEqual(errorReport(new Error("boom")), { error: { code: "E_INTERNAL", message: "boom", exitCode: EXIT_CODES.error } });
});

test("--json is read from the raw arguments, up to --, and not for the bench (its --json names a file)", (t) => {
  t.true(wantsJson(["status", "--json"]));
  t.true(wantsJson(["real", "add", "--json", "198.18.0.100:80"]));
  t.false(wantsJson(["status"]));
  t.false(wantsJson(["status", "--", "--json"]));
  t.false(wantsJson(["bench", "--json", "out.json"]));
});

test("log level: the command line, else $NATLB_LOG_LEVEL, else info; anything else is refused", (t) => {
  t.is(resolveLogLevel("debug", { NATLB_LOG_LEVEL: "warn" }), "debug");
  t.is(resolveLogLevel(undefined, { NATLB_LOG_LEVEL: "WARN" }), "warn");
  t.is(resolveLogLevel(undefined, {}), "info");
  const error = t.throws(() => resolveLogLevel(undefined, { NATLB_LOG_LEVEL: "loud" }));
  t.is((error as NatlbError).code, "E_USAGE");
  t.is(exitCodeFor(error), EXIT_CODES.usage);
});

test("terminal log lines: time, level, message, fields; not-JSON passes through", (t) => {
  const record = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 2, 3, 4, 5, 678), pid: 1, hostname: "gw", name: "natlb", msg: "health check failed", real: "198.18.1.11:8080", note: "two words" });
  t.is(formatLogRecord(record, false), '03:04:05.678 WARN  health check failed real=198.18.1.11:8080 note="two words"');
  t.is(formatLogRecord(record, true), '\x1b[90m03:04:05.678\x1b[0m \x1b[33mWARN \x1b[0m health check failed real=198.18.1.11:8080 note="two words"');
  const withError = JSON.stringify({ level: 50, time: 0, msg: "stop failed", err: { message: "EPERM", stack: "Error: EPERM\n    at stop (x.js:1:1)" } });
  t.is(formatLogRecord(withError, false), "00:00:00.000 ERROR stop failed err=EPERM\n    at stop (x.js:1:1)");
  t.is(formatLogRecord("plain text", false), "plain text");
});
