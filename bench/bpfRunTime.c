// The run time of loaded BPF programs, for the balancer's CPU per GiB: with natlb's kernel fast path
// the established packets never reach the daemon's process, and the work done for them is the BPF
// programs' run time. bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME) makes the kernel keep run_time_ns and
// run_cnt per program for as long as the returned fd is open (closed on exit, also when killed),
// unlike the global sysctl kernel.bpf_stats_enabled, which would stay on. Built by
// bench/bpfRunTime.ts with `cc -O2`; needs CAP_SYS_ADMIN (the bench runs as root).
//
//   bpfruntime [--max-seconds S] PREFIX [PREFIX..]
//     stdout: {"event":"enabled"} once the statistics are on (or {"event":"unavailable","reason":..}
//     and exit code 1); then, for every line read on stdin, one line
//       {"event":"sample","programs":[{"id":N,"name":"..","runTimeNs":N,"runCount":N},..]}
//     listing every loaded program whose name starts with one of the PREFIXes (the kernel keeps 15
//     characters of a name). Exits when stdin closes, or after S seconds (default 7200).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { MAX_PREFIXES = 16, MAX_PROGRAMS_PER_SAMPLE = 65536, MAX_SAMPLES = 1000000 };

static long bpf(int cmd, union bpf_attr* attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void print_json_string(const char* s) {
  putchar('"');
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void unavailable(const char* what, int err) {
  printf("{\"event\":\"unavailable\",\"reason\":");
  char reason[256];
  snprintf(reason, sizeof reason, "%s: %s", what, strerror(err));
  print_json_string(reason);
  printf("}\n");
  fflush(stdout);
}

static int matches(const char* name, char* const* prefixes, int count) {
  for (int i = 0; i < count; i++) {
    if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  }
  return 0;
}

// One sample line: every matching program. A program unloaded between two calls is skipped.
static int print_sample(char* const* prefixes, int count) {
  printf("{\"event\":\"sample\",\"programs\":[");
  int printed = 0;
  uint32_t id = 0;
  for (int n = 0; n < MAX_PROGRAMS_PER_SAMPLE; n++) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.start_id = id;
    if (bpf(BPF_PROG_GET_NEXT_ID, &attr) != 0) {
      if (errno == ENOENT) break;
      printf("]}\n");
      fflush(stdout);
      fprintf(stderr, "bpfruntime: BPF_PROG_GET_NEXT_ID: %s\n", strerror(errno));
      return -1;
    }
    id = attr.next_id;
    memset(&attr, 0, sizeof attr);
    attr.prog_id = id;
    int fd = (int)bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (fd < 0) continue;
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof info;
    attr.info.info = (uint64_t)(uintptr_t)&info;
    long r = bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
    close(fd);
    if (r != 0) continue;
    char name[BPF_OBJ_NAME_LEN + 1];
    memcpy(name, info.name, BPF_OBJ_NAME_LEN);
    name[BPF_OBJ_NAME_LEN] = '\0';
    if (!matches(name, prefixes, count)) continue;
    printf("%s{\"id\":%u,\"name\":", printed > 0 ? "," : "", info.id);
    print_json_string(name);
    printf(",\"runTimeNs\":%llu,\"runCount\":%llu}", (unsigned long long)info.run_time_ns, (unsigned long long)info.run_cnt);
    printed++;
  }
  printf("]}\n");
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  long max_seconds = 7200;
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "--max-seconds") == 0) {
    max_seconds = strtol(argv[2], NULL, 10);
    first = 3;
  }
  int count = argc - first;
  if (max_seconds < 1 || max_seconds > 7 * 86400 || count < 1 || count > MAX_PREFIXES) {
    fprintf(stderr, "usage: bpfruntime [--max-seconds 1..604800] PREFIX [PREFIX..] (1 to %d prefixes)\n", MAX_PREFIXES);
    return 2;
  }
  for (int i = first; i < argc; i++) {
    if (argv[i][0] == '\0' || strlen(argv[i]) >= BPF_OBJ_NAME_LEN) {
      fprintf(stderr, "bpfruntime: a prefix must have 1 to %d characters: \"%s\"\n", BPF_OBJ_NAME_LEN - 1, argv[i]);
      return 2;
    }
  }
  // SIGALRM's default action ends the process (and the kernel closes the statistics fd).
  alarm((unsigned)max_seconds);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.enable_stats.type = BPF_STATS_RUN_TIME;
  int stats_fd = (int)bpf(BPF_ENABLE_STATS, &attr);
  if (stats_fd < 0) {
    unavailable("bpf(BPF_ENABLE_STATS)", errno);
    return 1;
  }
  printf("{\"event\":\"enabled\"}\n");
  fflush(stdout);
  char line[256];
  int status = 0;
  for (int n = 0; n < MAX_SAMPLES && fgets(line, sizeof line, stdin) != NULL; n++) {
    if (print_sample(argv + first, count) != 0) {
      status = 1;
      break;
    }
  }
  close(stats_fd);
  return status;
}
