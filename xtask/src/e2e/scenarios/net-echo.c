/*
 * net-echo: dom0's load generator for the net scenario (apps/netecho),
 * built static by xtask (scenarios/net.rs) and self-tested on the host.
 *
 *   net-echo conc ADDR PORT N BYTES TIMEOUT_MS
 *       Opens N TCP connections at once (non-blocking connects, then waits
 *       until every one is established: all N are open together), then
 *       sends each its own BYTES-byte payload, half-closes, reads the echo
 *       until EOF and compares it byte for byte. Prints
 *       "conc N connected_ms=C total_ms=T" on success.
 *   net-echo udp ADDR PORT N BYTES TIMEOUT_MS
 *       Sends N datagrams of 1..BYTES bytes one at a time, each waiting for
 *       its echo (resent up to 3 times after 1 s); compares them. Prints
 *       "udp N rtt_avg_us=A rtt_max_us=M resent=R".
 *   net-echo selftest
 *       Runs both against an echo server it starts on 127.0.0.1.
 *
 * Exit 0 on success; 1 with one line on stderr naming what failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 1024
#define BYTES_MAX 65536
#define UDP_BYTES_MAX 1472
#define UDP_TRIES 4
#define UDP_WAIT_MS 1000

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("net-echo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Payload byte i of connection (or datagram) c: the owner's number first,
 * so a mixed-up echo is caught, then an xorshift stream. */
static void payload(unsigned c, unsigned char *buf, size_t len)
{
    uint32_t x = 0x9e3779b9u ^ (c * 0x85ebca6bu);
    int n = snprintf((char *)buf, len, "conn %u:", c);
    size_t i = n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len);
    for (; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)(x >> 24);
    }
}

static long number(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        die("bad %s '%s' (%ld..%ld)", what, s, lo, hi);
    return v;
}

static struct sockaddr_in address(const char *ip, const char *port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)number(port, 1, 65535, "port"));
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
        die("bad address '%s'", ip);
    return a;
}

struct conn {
    int fd;
    int connected;
    size_t sent;
    size_t got;
    int eof;
    unsigned char want[BYTES_MAX];
    unsigned char have[BYTES_MAX];
};

static int conc(const char *ip, const char *port_s, long n, long bytes, long timeout_ms)
{
    struct sockaddr_in a = address(ip, port_s);
    static struct conn conns[CONNS_MAX];
    static struct pollfd pfd[CONNS_MAX];
    int64_t start = now_us(), deadline = start + timeout_ms * 1000, connected_at = 0;
    long open = 0, done = 0;

    for (long i = 0; i < n; i++) {
        struct conn *c = &conns[i];
        memset(c, 0, sizeof *c);
        payload((unsigned)i, c->want, (size_t)bytes);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket %ld: %s", i, strerror(errno));
        if (connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0) {
            c->connected = 1;
            open++;
        } else if (errno != EINPROGRESS) {
            die("connect %ld: %s", i, strerror(errno));
        }
    }
    /* Phase 1: every connection established before any byte is sent. */
    while (open < n) {
        int64_t left = (deadline - now_us()) / 1000;
        if (left <= 0)
            die("only %ld of %ld connections established within %ld ms", open, n, timeout_ms);
        long k = 0;
        for (long i = 0; i < n; i++) {
            if (!conns[i].connected) {
                pfd[k].fd = conns[i].fd;
                pfd[k].events = POLLOUT;
                k++;
            }
        }
        if (poll(pfd, (nfds_t)k, (int)left) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (long i = 0, j = 0; i < n; i++) {
            if (conns[i].connected)
                continue;
            if (pfd[j].revents) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(conns[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err)
                    die("connection %ld: %s (after %ld established)", i, strerror(err), open);
                conns[i].connected = 1;
                open++;
            }
            j++;
        }
    }
    connected_at = now_us();
    /* Phase 2: all of them echo at once. */
    while (done < n) {
        int64_t left = (deadline - now_us()) / 1000;
        if (left <= 0)
            die("only %ld of %ld connections echoed within %ld ms", done, n, timeout_ms);
        for (long i = 0; i < n; i++) {
            struct conn *c = &conns[i];
            pfd[i].fd = c->eof ? -1 : c->fd;
            pfd[i].events = POLLIN | (c->sent < (size_t)bytes ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n, (int)left) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (long i = 0; i < n; i++) {
            struct conn *c = &conns[i];
            if (c->eof || !pfd[i].revents)
                continue;
            if (c->sent < (size_t)bytes && (pfd[i].revents & (POLLOUT | POLLERR))) {
                ssize_t w = send(c->fd, c->want + c->sent, (size_t)bytes - c->sent, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN)
                    die("connection %ld: send after %zu bytes: %s", i, c->sent, strerror(errno));
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->sent == (size_t)bytes && shutdown(c->fd, SHUT_WR) < 0)
                    die("connection %ld: shutdown: %s", i, strerror(errno));
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                unsigned char *to = c->have + c->got;
                size_t room = sizeof c->have - c->got;
                ssize_t r = recv(c->fd, to, room, 0);
                if (r < 0 && errno != EAGAIN)
                    die("connection %ld: recv after %zu bytes: %s", i, c->got, strerror(errno));
                if (r == 0) {
                    if (c->got != (size_t)bytes || memcmp(c->have, c->want, (size_t)bytes))
                        die("connection %ld: echo of %zu bytes differs from the %ld sent",
                            i, c->got, bytes);
                    if (c->sent != (size_t)bytes)
                        die("connection %ld: closed after %zu of %ld bytes sent", i, c->sent, bytes);
                    c->eof = 1;
                    close(c->fd);
                    done++;
                } else if (r > 0) {
                    c->got += (size_t)r;
                    if (c->got > (size_t)bytes)
                        die("connection %ld: more than %ld bytes came back", i, bytes);
                }
            }
        }
    }
    int64_t end = now_us();
    printf("conc %ld connected_ms=%.1f total_ms=%.1f\n", n, (connected_at - start) / 1000.0,
           (end - start) / 1000.0);
    return 0;
}

static int udp(const char *ip, const char *port_s, long n, long bytes, long timeout_ms)
{
    struct sockaddr_in a = address(ip, port_s);
    unsigned char want[UDP_BYTES_MAX], have[UDP_BYTES_MAX + 1];
    int64_t total = 0, max = 0, deadline = now_us() + timeout_ms * 1000;
    long resent = 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("udp socket: %s", strerror(errno));
    for (long i = 0; i < n; i++) {
        size_t len = 1 + (size_t)(i * 997) % (size_t)bytes;
        payload((unsigned)i, want, len);
        int ok = 0;
        for (int t = 0; t < UDP_TRIES && !ok; t++) {
            if (now_us() > deadline)
                die("udp: only %ld of %ld datagrams echoed within %ld ms", i, n, timeout_ms);
            if (t)
                resent++;
            int64_t sent_at = now_us();
            if (send(fd, want, len, 0) != (ssize_t)len)
                die("udp send %ld: %s", i, strerror(errno));
            for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = (sent_at + UDP_WAIT_MS * 1000 - now_us()) / 1000;
                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                    break;
                ssize_t r = recv(fd, have, sizeof have, 0);
                if (r < 0)
                    die("udp recv %ld: %s", i, strerror(errno));
                /* A late echo of an earlier try or datagram: skip it. */
                if ((size_t)r != len || memcmp(have, want, len))
                    continue;
                int64_t rtt = now_us() - sent_at;
                total += rtt;
                if (rtt > max)
                    max = rtt;
                ok = 1;
                break;
            }
        }
        if (!ok)
            die("udp datagram %ld (%zu bytes): no echo after %d tries", i, len, UDP_TRIES);
    }
    close(fd);
    printf("udp %ld rtt_avg_us=%lld rtt_max_us=%lld resent=%ld\n", n, (long long)(total / n),
           (long long)max, resent);
    return 0;
}

/* The self-test's echo server: TCP (one child per connection) and UDP. */
static void serve(int tcp, int udp_fd)
{
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        struct pollfd p[2] = {{.fd = tcp, .events = POLLIN}, {.fd = udp_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents) {
            unsigned char b[2048];
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t r = recvfrom(udp_fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
            if (r > 0)
                sendto(udp_fd, b, (size_t)r, 0, (struct sockaddr *)&from, fl);
        }
        if (p[0].revents) {
            int c = accept(tcp, NULL, NULL);
            if (c < 0)
                continue;
            if (fork() == 0) {
                unsigned char b[4096];
                ssize_t r;
                while ((r = read(c, b, sizeof b)) > 0)
                    if (write(c, b, (size_t)r) != r)
                        _exit(1);
                _exit(0);
            }
            close(c);
        }
    }
}

static int selftest(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int tcp = socket(AF_INET, SOCK_STREAM, 0), udp_fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (tcp < 0 || udp_fd < 0 || bind(tcp, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(tcp, (struct sockaddr *)&a, &al) < 0 || listen(tcp, 128) < 0 ||
        bind(udp_fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("selftest server: %s", strerror(errno));
    pid_t server = fork();
    if (server == 0)
        serve(tcp, udp_fd);
    char port[16];
    snprintf(port, sizeof port, "%u", ntohs(a.sin_port));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        conc("127.0.0.1", port, 50, 3000, 10000);
        udp("127.0.0.1", port, 20, 1400, 10000);
        fflush(stdout);
        _exit(0);
    }
    int status = 1;
    waitpid(child, &status, 0);
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        die("selftest failed");
    /* The check must be able to fail: a payload differs between owners. */
    unsigned char x[64], y[64];
    payload(1, x, sizeof x);
    payload(2, y, sizeof y);
    if (!memcmp(x, y, sizeof x))
        die("selftest: payloads of two connections are equal");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "selftest"))
        return selftest();
    if (argc != 7)
        die("usage: net-echo conc|udp ADDR PORT N BYTES TIMEOUT_MS | selftest");
    long timeout_ms = number(argv[6], 1, 600000, "timeout");
    if (!strcmp(argv[1], "conc"))
        return conc(argv[2], argv[3], number(argv[4], 1, CONNS_MAX, "N"),
                    number(argv[5], 1, BYTES_MAX, "BYTES"), timeout_ms);
    if (!strcmp(argv[1], "udp"))
        return udp(argv[2], argv[3], number(argv[4], 1, 100000, "N"),
                   number(argv[5], 1, UDP_BYTES_MAX, "BYTES"), timeout_ms);
    die("unknown mode '%s'", argv[1]);
}
