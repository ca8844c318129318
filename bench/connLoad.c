// Short-connection load in C: a tiny-response server for the real servers and a client that keeps C
// connections in flight (connect, one request, whole response, close). The per-connection cost of a
// Node client (~100+ us of JavaScript) would hide the cost of the path under test on a 2-core host;
// this one costs a few microseconds. Built by bench/connTool.ts with `cc -O2`.
//
//   connload server --port P [--ip A] [--max-seconds S]
//     stdout: {"event":"listening","real":A,"port":P,"pid":N}; on SIGTERM {"event":"exit","served":N}
//   connload client --targets IP:PORT[,IP:PORT..] [--concurrency C] [--count N] [--duration-ms D]
//                   [--local-address A] [--conn-timeout-ms T] [--latencies]
//     stdout: {"event":"summary","completed":..,"failed":..,"errors":{..},"seconds":..,"perSecond":..,
//              "latencyMs":{"median":..,"p90":..,"min":..,"max":..}|null[,"samples":[..]]}
//     Connection i goes to target i % targets. The server closes first, so TIME_WAIT stays on the
//     server side and the client never runs out of ports.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 64
#define MAX_CONCURRENCY 1024
#define MAX_ERROR_KINDS 16

static const char REQUEST[] = "GET /s HTTP/1.0\r\n\r\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die_usage(const char* msg) {
  fprintf(stderr, "connload: %s\n", msg);
  exit(2);
}

static const char* arg_value(int argc, char** argv, const char* name) {
  for (int i = 2; i < argc - 1; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

static int arg_flag(int argc, char** argv, const char* name) {
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

static long arg_long(int argc, char** argv, const char* name, long fallback, long min, long max) {
  const char* v = arg_value(argc, argv, name);
  if (v == NULL) return fallback;
  char* end;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n < min || n > max) {
    fprintf(stderr, "connload: %s must be an integer in %ld..%ld, got \"%s\"\n", name, min, max, v);
    exit(2);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Server

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int run_server(int argc, char** argv) {
  const long port = arg_long(argc, argv, "--port", 8081, 1, 65535);
  const long max_seconds = arg_long(argc, argv, "--max-seconds", 3600, 1, 7 * 86400);
  const char* ip = arg_value(argc, argv, "--ip");
  if (ip == NULL) ip = "";
  char body[64], response[256];
  snprintf(body, sizeof body, "%s\n", ip);
  const int response_len = snprintf(response, sizeof response,
                                    "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\nX-Real: %s\r\n\r\n%s",
                                    strlen(body), ip, body);

  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    fprintf(stderr, "connload: cannot listen on port %ld: %s\n", port, strerror(errno));
    return 1;
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  alarm((unsigned)max_seconds);
  printf("{\"event\":\"listening\",\"real\":\"%s\",\"port\":%ld,\"pid\":%d}\n", ip, port, (int)getpid());
  fflush(stdout);

  unsigned long long served = 0;
  struct epoll_event events[256];
  char buf[4096];
  while (!stop_requested) {
    const int n = epoll_wait(ep, events, 256, 200);
    for (int i = 0; i < n; i++) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          const int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      const ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        // The request fits one read; answer and close (FIN after the response).
        if (write(fd, response, (size_t)response_len) == response_len) served++;
        close(fd);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
      }
    }
  }
  printf("{\"event\":\"exit\",\"served\":%llu}\n", served);
  fflush(stdout);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Client

struct slot {
  int fd;
  int state;  // 0 idle, 1 connecting, 2 waiting for the response
  double t0;
  size_t received;
  int first_byte;
};

struct error_kind {
  const char* name;
  unsigned long long count;
};

static struct error_kind errors[MAX_ERROR_KINDS];
static int error_kinds = 0;
static unsigned long long failed = 0;

static void count_error(const char* name) {
  failed++;
  for (int i = 0; i < error_kinds; i++) {
    if (strcmp(errors[i].name, name) == 0) {
      errors[i].count++;
      return;
    }
  }
  if (error_kinds < MAX_ERROR_KINDS) errors[error_kinds++] = (struct error_kind){name, 1};
}

static const char* errno_name(int e) {
  switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case EMFILE: return "EMFILE";
    default: return "EOTHER";
  }
}

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double percentile(const double* sorted, size_t n, double p) {
  size_t i = (size_t)((p / 100.0) * (double)n + 0.999999);
  if (i < 1) i = 1;
  if (i > n) i = n;
  return sorted[i - 1];
}

// {"median","p90","min","max"} of n sorted samples, or null.
static void print_latency_summary(const double* sorted, size_t n) {
  if (n == 0) {
    printf("null");
    return;
  }
  printf("{\"median\":%.4f,\"p90\":%.4f,\"min\":%.4f,\"max\":%.4f}", percentile(sorted, n, 50),
         percentile(sorted, n, 90), sorted[0], sorted[n - 1]);
}

static int run_client(int argc, char** argv) {
  const char* targets_arg = arg_value(argc, argv, "--targets");
  if (targets_arg == NULL) die_usage("--targets is required");
  struct sockaddr_in targets[MAX_TARGETS];
  int ntargets = 0;
  {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", targets_arg);
    for (char* save = NULL, *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
      char* colon = strchr(t, ':');
      if (colon == NULL || ntargets >= MAX_TARGETS) die_usage("--targets must be IPv4:port[,IPv4:port..] (at most 64)");
      *colon = '\0';
      const long port = strtol(colon + 1, NULL, 10);
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
      if (inet_pton(AF_INET, t, &a.sin_addr) != 1 || port < 1 || port > 65535) die_usage("--targets: bad IPv4:port");
      targets[ntargets++] = a;
    }
  }
  const long concurrency = arg_long(argc, argv, "--concurrency", 32, 1, MAX_CONCURRENCY);
  const long count = arg_long(argc, argv, "--count", 10000, 1, 10000000);
  const long duration_ms = arg_long(argc, argv, "--duration-ms", 5000, 1, 3600000);
  const long conn_timeout_ms = arg_long(argc, argv, "--conn-timeout-ms", 2000, 1, 60000);
  const int keep_samples = arg_flag(argc, argv, "--latencies");
  const char* local = arg_value(argc, argv, "--local-address");
  struct sockaddr_in local_addr = {.sin_family = AF_INET};
  if (local != NULL && inet_pton(AF_INET, local, &local_addr.sin_addr) != 1) die_usage("--local-address must be IPv4");
  signal(SIGPIPE, SIG_IGN);

  double* samples = malloc(sizeof(double) * (size_t)count);
  struct slot* slots = calloc((size_t)concurrency, sizeof(struct slot));
  if (samples == NULL || slots == NULL) die_usage("out of memory");
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  size_t completed = 0;
  long started = 0;
  int active = 0;
  const double t_start = now_ms();
  const double deadline = t_start + (double)duration_ms;
  char buf[4096];

  for (;;) {
    double now = now_ms();
    // Start connections into free slots while the run lasts.
    for (long s = 0; s < concurrency && started < count && now < deadline; s++) {
      struct slot* sl = &slots[s];
      if (sl->state != 0) continue;
      const struct sockaddr_in* target = &targets[started % ntargets];
      started++;
      sl->t0 = now_ms();
      sl->received = 0;
      sl->first_byte = -1;
      sl->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (sl->fd < 0) {
        count_error(errno_name(errno));
        continue;
      }
      if (local != NULL) {
        // Port chosen at connect() time from the whole 4-tuple, not reserved exclusively by bind().
        const int one = 1;
        setsockopt(sl->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(sl->fd, (const struct sockaddr*)&local_addr, sizeof local_addr) != 0) {
          count_error(errno_name(errno));
          close(sl->fd);
          continue;
        }
      }
      if (connect(sl->fd, (const struct sockaddr*)target, sizeof *target) != 0 && errno != EINPROGRESS) {
        count_error(errno_name(errno));
        close(sl->fd);
        continue;
      }
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)s};
      epoll_ctl(ep, EPOLL_CTL_ADD, sl->fd, &ev);
      sl->state = 1;
      active++;
    }
    if (active == 0 && (started >= count || now_ms() >= deadline)) break;

    struct epoll_event events[MAX_CONCURRENCY];
    const int n = epoll_wait(ep, events, (int)concurrency, 5);
    for (int i = 0; i < n; i++) {
      struct slot* sl = &slots[events[i].data.u32];
      if (sl->state == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          count_error(errno_name(err));
          close(sl->fd);
          sl->state = 0;
          active--;
          continue;
        }
        if (write(sl->fd, REQUEST, sizeof REQUEST - 1) != (ssize_t)(sizeof REQUEST - 1)) {
          count_error("write failed");
          close(sl->fd);
          sl->state = 0;
          active--;
          continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[i].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, sl->fd, &ev);
        sl->state = 2;
        continue;
      }
      for (;;) {
        const ssize_t r = read(sl->fd, buf, sizeof buf);
        if (r > 0) {
          if (sl->received == 0) sl->first_byte = (unsigned char)buf[0];
          sl->received += (size_t)r;
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        // End of stream or error: the connection is over.
        if (r == 0 && sl->received > 0 && sl->first_byte == 'H') {
          samples[completed++] = now_ms() - sl->t0;
        } else {
          count_error(r == 0 ? "empty response" : errno_name(errno));
        }
        close(sl->fd);
        sl->state = 0;
        active--;
        break;
      }
    }
    // Per-connection timeouts.
    now = now_ms();
    for (long s = 0; s < concurrency; s++) {
      if (slots[s].state != 0 && now - slots[s].t0 > (double)conn_timeout_ms) {
        count_error("timeout");
        close(slots[s].fd);
        slots[s].state = 0;
        active--;
      }
    }
  }
  const double seconds = (now_ms() - t_start) / 1e3;

  printf("{\"event\":\"summary\",\"completed\":%zu,\"failed\":%llu,\"errors\":{", completed, failed);
  for (int i = 0; i < error_kinds; i++) printf("%s\"%s\":%llu", i ? "," : "", errors[i].name, errors[i].count);
  printf("},\"seconds\":%.6f,\"perSecond\":%.0f,\"latencyMs\":", seconds, seconds > 0 ? (double)completed / seconds : 0.0);
  if (keep_samples) {
    // Keep the order of completion for the samples; sort a copy for the percentiles.
    double* sorted = malloc(sizeof(double) * (completed ? completed : 1));
    memcpy(sorted, samples, sizeof(double) * completed);
    qsort(sorted, completed, sizeof(double), cmp_double);
    print_latency_summary(sorted, completed);
    printf(",\"samples\":[");
    for (size_t i = 0; i < completed; i++) printf("%s%.4f", i ? "," : "", samples[i]);
    printf("]");
    free(sorted);
  } else {
    qsort(samples, completed, sizeof(double), cmp_double);
    print_latency_summary(samples, completed);
  }
  printf("}\n");
  fflush(stdout);
  return failed == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2) die_usage("usage: connload server|client [options]");
  if (strcmp(argv[1], "server") == 0) return run_server(argc, argv);
  if (strcmp(argv[1], "client") == 0) return run_client(argc, argv);
  die_usage("the first argument must be server or client");
  return 2;
}
