/*
 * ringlet-bench-dom0: the dom0-side measuring tools of `cargo xtask bench
 * xen` (xtask/src/benchxen/). Built by xtask on the host against
 * libxenctrl (dom0 has the same Xen release's library) and staged next to
 * the bench scenarios' check scripts.
 *
 *   ringlet-bench-dom0 cputime DOMID...
 *       Prints "DOMID NS" per domain: the CPU time Xen has accounted to the
 *       domain so far (all its vCPUs), in nanoseconds, from
 *       XEN_DOMCTL_getdomaininfo. `xl list` shows the same counter rounded
 *       to 0.1 s.
 *
 *   ringlet-bench-dom0 wait200 IPV4 PORT PATH TIMEOUT_MS
 *       Tries `GET PATH` every TRY_INTERVAL_MS until an answer starts with
 *       "HTTP/1.x 200", then prints the wall clock (CLOCK_REALTIME, ns) of
 *       that answer and the number of tries. Each try is a fresh
 *       non-blocking connection given at most TRY_MS; nothing runs between
 *       tries, so it takes little of dom0's one vCPU. Exit 1 on timeout.
 *
 * Every failure prints one line to stderr and exits non-zero.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>

/* A try's bound: connect, send, and the status line. */
#define TRY_MS 200
/* Pause between tries. */
#define TRY_INTERVAL_MS 10
/* Bound on the status line read. */
#define STATUS_BYTES_MAX 64
/* Bound on the domains one cputime call reports. */
#define DOMAINS_MAX 16

static long long parse(const char *s, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max)
        return -1;
    return v;
}

static long long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cputime(int n, char **ids)
{
    if (n > DOMAINS_MAX) {
        fprintf(stderr, "ringlet-bench-dom0: cputime: at most %d domains\n", DOMAINS_MAX);
        return 2;
    }
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        fprintf(stderr, "ringlet-bench-dom0: xc_interface_open: %s\n", strerror(errno));
        return 1;
    }
    int status = 0;
    for (int i = 0; i < n; i++) {
        long long domid = parse(ids[i], 0x7fef);
        if (domid < 0) {
            fprintf(stderr, "ringlet-bench-dom0: cputime: bad domid %s\n", ids[i]);
            status = 2;
            break;
        }
        xc_dominfo_t info;
        int got = xc_domain_getinfo(xch, (uint32_t)domid, 1, &info);
        if (got != 1 || info.domid != (uint32_t)domid) {
            fprintf(stderr, "ringlet-bench-dom0: cputime: no domain %lld\n", domid);
            status = 1;
            break;
        }
        printf("%lld %llu\n", domid, (unsigned long long)info.cpu_time);
    }
    xc_interface_close(xch);
    return status;
}

/* One try: 1 on a 200, 0 otherwise. */
static int try_once(const struct sockaddr_in *addr, const char *request, size_t request_len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    long long deadline = now_ns(CLOCK_MONOTONIC) + (long long)TRY_MS * 1000000LL;
    int ok = 0;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS)
        goto out;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int left = (int)((deadline - now_ns(CLOCK_MONOTONIC)) / 1000000LL);
    if (left <= 0 || poll(&p, 1, left) != 1)
        goto out;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        goto out;
    if (send(fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len)
        goto out;
    char status[STATUS_BYTES_MAX];
    size_t got = 0;
    while (got < 12) {
        p.events = POLLIN;
        left = (int)((deadline - now_ns(CLOCK_MONOTONIC)) / 1000000LL);
        if (left <= 0 || poll(&p, 1, left) != 1)
            goto out;
        ssize_t r = recv(fd, status + got, sizeof status - got, 0);
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    ok = memcmp(status, "HTTP/1.", 7) == 0 && memcmp(status + 8, " 200", 4) == 0;
out:
    close(fd);
    return ok;
}

static int wait200(const char *ip, const char *port_s, const char *path, const char *timeout_s)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    long long port = parse(port_s, 65535);
    long long timeout_ms = parse(timeout_s, 3600 * 1000);
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1 || port <= 0 || timeout_ms < 0 ||
        path[0] != '/' || strlen(path) > 200) {
        fprintf(stderr, "ringlet-bench-dom0: wait200: bad arguments\n");
        return 2;
    }
    addr.sin_port = htons((uint16_t)port);
    char request[256];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
                               ip);
    long long end = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000LL;
    for (long long tries = 1;; tries++) {
        if (try_once(&addr, request, (size_t)request_len)) {
            printf("%lld %lld\n", now_ns(CLOCK_REALTIME), tries);
            return 0;
        }
        if (now_ns(CLOCK_MONOTONIC) >= end) {
            fprintf(stderr, "ringlet-bench-dom0: wait200: no 200 from %s:%lld%s within %lld ms "
                            "(%lld tries)\n",
                    ip, port, path, timeout_ms, tries);
            return 1;
        }
        struct timespec pause = { .tv_sec = 0, .tv_nsec = TRY_INTERVAL_MS * 1000000L };
        nanosleep(&pause, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "cputime") == 0)
        return cputime(argc - 2, argv + 2);
    if (argc == 6 && strcmp(argv[1], "wait200") == 0)
        return wait200(argv[2], argv[3], argv[4], argv[5]);
    fprintf(stderr, "usage: ringlet-bench-dom0 cputime DOMID...\n"
                    "       ringlet-bench-dom0 wait200 IPV4 PORT PATH TIMEOUT_MS\n");
    return 2;
}
