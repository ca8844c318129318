// Spoofed-source flood generator for the lab's attack tests and the benchmark's flood case: TCP SYNs,
// TCP ACKs of no connection (mid-stream segments, for the ECMP pick-up's defences) or UDP datagrams to one ip:port, each from a random address of a source CIDR and a random port,
// at a steady packet rate, bounded in packets and in seconds (both required). Packets are built
// whole (IP header included, correct IP and TCP/UDP checksums) and sent in sendmmsg batches on a raw
// IP socket (IPPROTO_RAW: IP_HDRINCL), so the kernel routes them and resolves the next hop's MAC.
// Only the lab range 198.18.0.0/15 is accepted, for the sources and the target alike. Built on
// demand by lab/nativeTools.ts (`cc -O2`); run through lab/flood.ts.
//
//   spoofflood --proto tcp|tcp-ack|udp --target IP:PORT --sources CIDR --rate PPS|max --count N --seconds S
//              [--payload-bytes B] [--batch K] [--seed X]
//     --rate     packets per second (1..10000000), or "max" for as fast as the socket takes them
//     --count    packets at most (1..100000000)
//     --seconds  time at most (0.001..600)
//     --payload-bytes  UDP payload size, 0..1472 (default 64); TCP SYNs carry none
//     --batch    packets per sendmmsg call, 1..1024 (default 64)
//     --seed     random seed (default: from the clock and the pid)
//   stdout, one line when sending starts and one at the end:
//     {"event":"started","proto":..,"target":..,"sources":..,"requestedRate":N|null,"count":..,"maxSeconds":..,"pid":..}
//     {"event":"summary","proto":..,"target":..,"sources":..,"requestedRate":N|null,"count":..,"maxSeconds":..,
//      "sent":..,"failed":..,"seconds":..,"rate":..,"errors":{"ENOBUFS":n,..},"stoppedBy":"count"|"seconds"|"signal"}
//   Exit code 0 once the summary is printed (errors are in it), 1 when the socket cannot be opened,
//   2 on bad arguments. SIGTERM/SIGINT stop it early (stoppedBy "signal"); it also stops when the
//   process that started it dies.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LAB_NET 0xC6120000u  // 198.18.0.0
#define LAB_PREFIX 15
#define MAX_COUNT 100000000L
#define MAX_SECONDS 600.0
#define MAX_RATE 10000000L
#define MAX_BATCH 1024
#define MAX_UDP_PAYLOAD 1472
#define IP_HLEN 20
#define TCP_HLEN 24  // 20 + the MSS option, as a real SYN carries
#define UDP_HLEN 8
#define MAX_ERROR_KINDS 16

static void die_usage(const char* fmt, const char* detail) {
  fprintf(stderr, "spoofflood: ");
  fprintf(stderr, fmt, detail);
  fprintf(stderr,
          "\nusage: spoofflood --proto tcp|udp --target IP:PORT --sources CIDR --rate PPS|max --count N --seconds S "
          "[--payload-bytes B] [--batch K] [--seed X]\n");
  exit(2);
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct options {
  int proto;  // IPPROTO_TCP or IPPROTO_UDP
  int ack;    // TCP: a bare ACK (no SYN, no option) instead of a SYN
  uint32_t target_ip;  // host order
  uint16_t target_port;
  uint32_t source_net;  // host order
  int source_prefix;
  long rate;  // 0 = max
  long count;
  double seconds;
  long payload_bytes;
  long batch;
  uint64_t seed;
  char target_text[32];
  char sources_text[32];
};

static const char* const KNOWN[] = {"--proto", "--target", "--sources", "--rate", "--count",
                                    "--seconds", "--payload-bytes", "--batch", "--seed"};

static const char* arg_value(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc - 1; i += 2)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

/** Every argument is a known "--name value" pair, none given twice. */
static void check_known(int argc, char** argv) {
  if ((argc - 1) % 2 != 0) die_usage("every option needs a value (%s)", argc > 1 ? argv[argc - 1] : "");
  for (int i = 1; i < argc; i += 2) {
    int known = 0;
    for (size_t k = 0; k < sizeof KNOWN / sizeof KNOWN[0]; k++) known |= strcmp(argv[i], KNOWN[k]) == 0;
    if (!known) die_usage("unknown option %s", argv[i]);
    for (int j = 1; j < i; j += 2)
      if (strcmp(argv[i], argv[j]) == 0) die_usage("%s given twice", argv[i]);
  }
}

static const char* required(int argc, char** argv, const char* name) {
  const char* v = arg_value(argc, argv, name);
  if (v == NULL || *v == '\0') die_usage("%s is required", name);
  return v;
}

static long parse_long(const char* name, const char* v, long min, long max) {
  char* end;
  errno = 0;
  const long n = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
    fprintf(stderr, "spoofflood: %s must be an integer in %ld..%ld, got \"%s\"\n", name, min, max, v);
    exit(2);
  }
  return n;
}

static int inside_lab(uint32_t net, int prefix) {
  return prefix >= LAB_PREFIX && (net & (0xFFFFFFFFu << (32 - LAB_PREFIX))) == LAB_NET;
}

static uint32_t parse_ipv4(const char* name, const char* text) {
  struct in_addr a;
  if (inet_pton(AF_INET, text, &a) != 1) die_usage("%s: not an IPv4 address", name);
  return ntohl(a.s_addr);
}

static void parse_options(int argc, char** argv, struct options* o) {
  check_known(argc, argv);
  memset(o, 0, sizeof *o);
  const char* proto = required(argc, argv, "--proto");
  if (strcmp(proto, "tcp") == 0) o->proto = IPPROTO_TCP;
  else if (strcmp(proto, "tcp-ack") == 0) o->proto = IPPROTO_TCP, o->ack = 1;
  else if (strcmp(proto, "udp") == 0) o->proto = IPPROTO_UDP;
  else die_usage("--proto must be tcp, tcp-ack or udp, got \"%s\"", proto);

  const char* target = required(argc, argv, "--target");
  {
    char copy[32];
    if (strlen(target) >= sizeof copy) die_usage("--target must be IPv4:port, got \"%s\"", target);
    strcpy(copy, target);
    char* colon = strchr(copy, ':');
    if (colon == NULL) die_usage("--target must be IPv4:port, got \"%s\"", target);
    *colon = '\0';
    o->target_ip = parse_ipv4("--target", copy);
    o->target_port = (uint16_t)parse_long("--target port", colon + 1, 1, 65535);
    if (!inside_lab(o->target_ip, 32)) die_usage("--target must be inside the lab range 198.18.0.0/15, got \"%s\"", target);
    snprintf(o->target_text, sizeof o->target_text, "%s", target);
  }

  const char* sources = required(argc, argv, "--sources");
  {
    char copy[32];
    if (strlen(sources) >= sizeof copy) die_usage("--sources must be a CIDR a.b.c.d/len, got \"%s\"", sources);
    strcpy(copy, sources);
    char* slash = strchr(copy, '/');
    if (slash == NULL) die_usage("--sources must be a CIDR a.b.c.d/len, got \"%s\"", sources);
    *slash = '\0';
    o->source_net = parse_ipv4("--sources", copy);
    o->source_prefix = (int)parse_long("--sources prefix length", slash + 1, 0, 32);
    const uint32_t mask = o->source_prefix == 0 ? 0 : 0xFFFFFFFFu << (32 - o->source_prefix);
    if ((o->source_net & ~mask) != 0) die_usage("--sources has host bits set: \"%s\"", sources);
    if (!inside_lab(o->source_net, o->source_prefix)) {
      die_usage("--sources must lie inside the lab range 198.18.0.0/15, got \"%s\"", sources);
    }
    snprintf(o->sources_text, sizeof o->sources_text, "%s", sources);
  }

  const char* rate = required(argc, argv, "--rate");
  o->rate = strcmp(rate, "max") == 0 ? 0 : parse_long("--rate", rate, 1, MAX_RATE);
  o->count = parse_long("--count", required(argc, argv, "--count"), 1, MAX_COUNT);
  {
    const char* s = required(argc, argv, "--seconds");
    char* end;
    o->seconds = strtod(s, &end);
    if (end == s || *end != '\0' || !(o->seconds >= 0.001) || o->seconds > MAX_SECONDS) {
      die_usage("--seconds must be a number in 0.001..600, got \"%s\"", s);
    }
  }
  const char* payload = arg_value(argc, argv, "--payload-bytes");
  if (payload != NULL && o->proto != IPPROTO_UDP) die_usage("--payload-bytes is for --proto udp only%s", "");
  o->payload_bytes = payload == NULL ? 64 : parse_long("--payload-bytes", payload, 0, MAX_UDP_PAYLOAD);
  const char* batch = arg_value(argc, argv, "--batch");
  o->batch = batch == NULL ? 64 : parse_long("--batch", batch, 1, MAX_BATCH);
  const char* seed = arg_value(argc, argv, "--seed");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  o->seed = seed == NULL ? ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40)
                         : (uint64_t)parse_long("--seed", seed, 0, 0x7FFFFFFFFFFFFFFFL);
}

// ---------------------------------------------------------------------------------------------
// Packets

static uint64_t rng_state;
static uint64_t next_random(void) {  // splitmix64
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/** Sum of big-endian 16-bit words (an odd last byte is padded with zero), not yet folded. */
static uint32_t sum_words(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return (uint16_t)sum;
}

static void put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t* p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

struct packet_plan {
  size_t l4_len;
  size_t total_len;
  uint32_t payload_sum;  // unfolded word sum of the UDP payload, the same in every packet
};

/** The parts every packet shares: IP header, TCP SYN with MSS option or UDP header and payload. */
static void build_template(uint8_t* pkt, const struct options* o, struct packet_plan* plan) {
  plan->l4_len = o->proto == IPPROTO_TCP ? TCP_HLEN : UDP_HLEN + (size_t)o->payload_bytes;
  plan->total_len = IP_HLEN + plan->l4_len;
  memset(pkt, 0, plan->total_len);
  pkt[0] = 0x45;
  put16(pkt + 2, (uint16_t)plan->total_len);
  if (o->proto == IPPROTO_TCP) put16(pkt + 6, 0x4000);  // DF, like the kernel's own SYNs
  pkt[8] = 64;
  pkt[9] = (uint8_t)o->proto;
  put32(pkt + 16, o->target_ip);
  uint8_t* l4 = pkt + IP_HLEN;
  put16(l4 + 2, o->target_port);
  if (o->proto == IPPROTO_TCP) {
    l4[12] = (TCP_HLEN / 4) << 4;
    l4[13] = o->ack ? 0x10 : 0x02;  // ACK, or SYN
    put16(l4 + 14, 64240);
    if (o->ack) {
      memset(l4 + 20, 1, 4);  // NOP options: an ACK carries no MSS
    } else {
      l4[20] = 2;  // MSS option: kind 2, length 4, 1460
      l4[21] = 4;
      put16(l4 + 22, 1460);
    }
    plan->payload_sum = 0;
  } else {
    put16(l4 + 4, (uint16_t)plan->l4_len);
    static const char fill[] = "natlb spoofed flood ";
    for (long i = 0; i < o->payload_bytes; i++) l4[UDP_HLEN + i] = (uint8_t)fill[i % (sizeof fill - 1)];
    plan->payload_sum = sum_words(l4 + UDP_HLEN, (size_t)o->payload_bytes, 0);
  }
}

/** Fills one packet's random fields (source address and port, IP id, TCP sequence) and its checksums. */
static void randomize(uint8_t* pkt, const struct options* o, const struct packet_plan* plan) {
  const uint64_t r1 = next_random(), r2 = next_random();
  const uint32_t host_bits = o->source_prefix == 32 ? 0 : (uint32_t)r1 & (0xFFFFFFFFu >> o->source_prefix);
  put32(pkt + 12, o->source_net | host_bits);
  put16(pkt + 4, (uint16_t)(r1 >> 32));
  put16(pkt + 10, 0);
  put16(pkt + 10, (uint16_t)~fold(sum_words(pkt, IP_HLEN, 0)));
  uint8_t* l4 = pkt + IP_HLEN;
  put16(l4, (uint16_t)(1024 + (uint16_t)(r1 >> 48) % (65536 - 1024)));
  // Pseudo header: source, destination, protocol, L4 length.
  uint32_t sum = sum_words(pkt + 12, 8, 0) + (uint32_t)o->proto + (uint32_t)plan->l4_len;
  if (o->proto == IPPROTO_TCP) {
    put32(l4 + 4, (uint32_t)r2);
    put16(l4 + 16, 0);
    put16(l4 + 16, (uint16_t)~fold(sum_words(l4, TCP_HLEN, sum)));
  } else {
    put16(l4 + 6, 0);
    uint16_t c = (uint16_t)~fold(sum_words(l4, UDP_HLEN, sum + plan->payload_sum));
    put16(l4 + 6, c == 0 ? 0xFFFF : c);  // 0 means "no checksum" in UDP
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
  struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
  if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static const char* errno_name(int e) {
  switch (e) {
    case ENOBUFS: return "ENOBUFS";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EINVAL: return "EINVAL";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "EOTHER";
  }
}

struct error_kind {
  const char* name;
  unsigned long long count;
};
static struct error_kind errors[MAX_ERROR_KINDS];
static int error_kinds = 0;

static void count_error(int err) {
  const char* name = errno_name(err);
  for (int i = 0; i < error_kinds; i++) {
    if (strcmp(errors[i].name, name) == 0) {
      errors[i].count++;
      return;
    }
  }
  if (error_kinds < MAX_ERROR_KINDS) errors[error_kinds++] = (struct error_kind){name, 1};
}

static void print_head(const char* event, const struct options* o) {
  const char* proto = o->proto == IPPROTO_UDP ? "udp" : o->ack ? "tcp-ack" : "tcp";
  printf("{\"event\":\"%s\",\"proto\":\"%s\",\"target\":\"%s\",\"sources\":\"%s\",\"requestedRate\":", event, proto,
         o->target_text, o->sources_text);
  if (o->rate == 0) printf("null");
  else printf("%ld", o->rate);
  printf(",\"count\":%ld,\"maxSeconds\":%.3f", o->count, o->seconds);
}

int main(int argc, char** argv) {
  struct options o;
  parse_options(argc, argv, &o);
  rng_state = o.seed;

  // Stop with the process that started it; never outlive the time bound by much.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  prctl(PR_SET_TIMERSLACK, 1000UL);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  alarm((unsigned)o.seconds + 6);

  const int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    fprintf(stderr, "spoofflood: raw socket: %s (needs CAP_NET_RAW)\n", strerror(errno));
    return 1;
  }
  const int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  // A full send buffer blocks at most this long, so the time bound holds.
  const struct timeval send_timeout = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);

  struct packet_plan plan;
  uint8_t template[IP_HLEN + UDP_HLEN + MAX_UDP_PAYLOAD];
  build_template(template, &o, &plan);
  uint8_t* buffers = malloc(plan.total_len * (size_t)o.batch);
  struct mmsghdr* msgs = calloc((size_t)o.batch, sizeof *msgs);
  struct iovec* iovs = calloc((size_t)o.batch, sizeof *iovs);
  if (buffers == NULL || msgs == NULL || iovs == NULL) {
    fprintf(stderr, "spoofflood: out of memory\n");
    return 1;
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(o.target_ip)};
  for (long i = 0; i < o.batch; i++) {
    memcpy(buffers + (size_t)i * plan.total_len, template, plan.total_len);
    iovs[i] = (struct iovec){.iov_base = buffers + (size_t)i * plan.total_len, .iov_len = plan.total_len};
    msgs[i].msg_hdr = (struct msghdr){.msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iovs[i], .msg_iovlen = 1};
  }
  // Throttled: wake up when about half a millisecond's worth of packets is due, so batches stay
  // small and the rate steady; a sender that fell behind catches up a batch at a time.
  const long wake_batch = o.rate == 0 ? o.batch : (o.rate / 2000 < 1 ? 1 : (o.rate / 2000 > o.batch ? o.batch : o.rate / 2000));

  print_head("started", &o);
  printf(",\"pid\":%d}\n", (int)getpid());
  fflush(stdout);

  long attempted = 0, sent = 0, failed = 0;
  const char* stopped_by = "count";
  const double start = now_s();
  const double end = start + o.seconds;
  double last_send = start;
  while (attempted < o.count) {
    if (stop_requested) {
      stopped_by = "signal";
      break;
    }
    const double now = now_s();
    if (now >= end) {
      stopped_by = "seconds";
      break;
    }
    long k = o.count - attempted < o.batch ? o.count - attempted : o.batch;
    if (o.rate != 0) {
      const long due = (long)((now - start) * (double)o.rate) + 1 - attempted;
      if (due < wake_batch && due < o.count - attempted) {
        const double wake = start + (double)(attempted + wake_batch) / (double)o.rate;
        sleep_until(wake < end ? wake : end);
        continue;
      }
      if (due < k) k = due;
    }
    for (long i = 0; i < k; i++) randomize(buffers + (size_t)i * plan.total_len, &o, &plan);
    long done = 0;
    while (done < k && !stop_requested) {
      const int n = sendmmsg(fd, msgs + done, (unsigned)(k - done), 0);
      if (n > 0) {
        done += n;
        sent += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // This message failed: count it and go on with the next one.
      count_error(n < 0 ? (errno == EWOULDBLOCK ? EAGAIN : errno) : EAGAIN);
      done++;
      failed++;
    }
    attempted += done;
    last_send = now_s();
  }
  const double seconds = last_send - start;

  print_head("summary", &o);
  printf(",\"sent\":%ld,\"failed\":%ld,\"seconds\":%.6f,\"rate\":%.0f,\"errors\":{", sent, failed, seconds,
         seconds > 0 ? (double)sent / seconds : 0.0);
  for (int i = 0; i < error_kinds; i++) printf("%s\"%s\":%llu", i ? "," : "", errors[i].name, errors[i].count);
  printf("},\"stoppedBy\":\"%s\"}\n", stopped_by);
  fflush(stdout);
  close(fd);
  return 0;
}
