/*
 * ringlet-forward: the TCP port forward of `cargo xtask demo`.
 *
 * Accepts connections on LISTEN and joins each to a new connection to
 * TARGET, copying bytes both ways until both directions are closed. In the
 * demo it runs in dom0: inside QEMU from dom0's 0.0.0.0:8080 (where QEMU's
 * user network delivers the host's 127.0.0.1:8080) to the appliance's
 * 10.0.0.2:80 on the bridge; on a Xen host from 127.0.0.1:8080 to the same
 * address. dom0 has no iptables, and a user-space forward needs neither NAT
 * nor a route back from the guest (it connects from the bridge's address).
 *
 *   ringlet-forward [-q] [-n MAX] LISTEN_ADDR:PORT TARGET_ADDR:PORT
 *
 * PORT 0 for LISTEN picks a free port. Prints
 * `ringlet-forward: listening on ADDR:PORT -> TARGET` once listening (the
 * real port); -q prints nothing else (otherwise one line per connection
 * closed, with its byte counts). Exits 0 on SIGTERM or SIGINT.
 *
 * Bounds (both peers are untrusted): at most MAX pairs at once (default and
 * ceiling PAIRS_MAX; the listener is not polled while full, so further
 * clients wait in the kernel's backlog), BUF_BYTES buffered per direction
 * (a side is not read while its buffer is full, so a slow reader slows its
 * writer instead of growing memory), CONNECT_MS for the connection to
 * TARGET, and IDLE_MS without a byte either way before a pair is closed.
 *
 * One thread, level-triggered epoll; each socket's interest is recomputed
 * after every event from its pair's state.
 *
 * Build: gcc -static -O2 -o ringlet-forward forward.c
 */
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

/* Bound on connection pairs at once. */
#define PAIRS_MAX 128
/* Bytes buffered per direction of a pair. */
#define BUF_BYTES (64 * 1024)
/* Bound on connecting to the target, milliseconds. */
#define CONNECT_MS 10000
/* A pair with no byte either way for this long is closed, milliseconds. */
#define IDLE_MS (10 * 60 * 1000)
/* Bound on epoll events taken per wait. */
#define EVENTS_MAX 64
/* The listener's backlog. */
#define BACKLOG 64

/* One direction: bytes read from `from`, not yet written to the other side. */
struct dir {
    char buf[BUF_BYTES];
    size_t start, end;   /* pending bytes are buf[start..end) */
    int eof;             /* `from` sent FIN (or failed): read no more */
    int shut;            /* FIN passed on (shutdown(SHUT_WR) of the other side) */
    unsigned long long bytes;
};

/* A client and its connection to the target. Side 0 is the client. */
struct pair {
    int used;
    int fd[2];
    int connecting;      /* fd[1]'s connect not yet finished */
    uint64_t last_ms;    /* last byte moved (or the accept) */
    uint64_t started_ms;
    struct dir d[2];     /* d[s]: read from fd[s], written to fd[1 - s] */
};

static struct pair pairs[PAIRS_MAX];
static int pairs_limit = PAIRS_MAX, pairs_open, quiet, ep, lfd, listening = 1;
static struct sockaddr_in target;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void die(const char *what) {
    fprintf(stderr, "ringlet-forward: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* "A.B.C.D:PORT" into an address; 0 on success. */
static int parse_addr(const char *s, struct sockaddr_in *a) {
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    long port;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535) return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static uint64_t tag(int slot, int side) { return ((uint64_t)slot << 1) | (uint64_t)side; }

/* What fd[s] of pair p should be polled for, from the pair's state. */
static uint32_t interest(const struct pair *p, int s) {
    uint32_t ev = 0;
    const struct dir *in = &p->d[s], *out = &p->d[1 - s];
    if (s == 1 && p->connecting) return EPOLLOUT;
    if (!in->eof && (in->end < BUF_BYTES || in->start > 0)) ev |= EPOLLIN;
    if (out->end > out->start || (out->eof && !out->shut)) ev |= EPOLLOUT;
    return ev;
}

static void update(int slot) {
    struct pair *p = &pairs[slot];
    for (int s = 0; s < 2; s++) {
        struct epoll_event e = { .events = interest(p, s), .data.u64 = tag(slot, s) };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, p->fd[s], &e) < 0) die("epoll_ctl mod");
    }
}

static void set_listening(int on) {
    if (on == listening) return;
    struct epoll_event e = { .events = on ? EPOLLIN : 0, .data.u64 = UINT64_MAX };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, lfd, &e) < 0) die("epoll_ctl listener");
    listening = on;
}

static void close_pair(int slot, const char *why) {
    struct pair *p = &pairs[slot];
    if (!quiet)
        printf("ringlet-forward: closed (%s) after %llu ms: %llu bytes in, %llu out\n", why,
               (unsigned long long)(now_ms() - p->started_ms), p->d[0].bytes, p->d[1].bytes);
    close(p->fd[0]);
    close(p->fd[1]);
    p->used = 0;
    pairs_open--;
    set_listening(1);
}

static void accept_one(void) {
    int slot, c, t;
    for (slot = 0; slot < pairs_limit && pairs[slot].used; slot++) {}
    if (slot == pairs_limit) { set_listening(0); return; }
    c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
            fprintf(stderr, "ringlet-forward: accept: %s\n", strerror(errno));
        return;
    }
    t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t < 0) { close(c); fprintf(stderr, "ringlet-forward: socket: %s\n", strerror(errno)); return; }
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct pair *p = &pairs[slot];
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->fd[0] = c;
    p->fd[1] = t;
    p->started_ms = p->last_ms = now_ms();
    pairs_open++;
    if (connect(t, (struct sockaddr *)&target, sizeof target) < 0) {
        if (errno != EINPROGRESS) {
            fprintf(stderr, "ringlet-forward: connect: %s\n", strerror(errno));
            close(c); close(t); p->used = 0; pairs_open--;
            return;
        }
        p->connecting = 1;
    }
    for (int s = 0; s < 2; s++) {
        struct epoll_event e = { .events = interest(p, s), .data.u64 = tag(slot, s) };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[s], &e) < 0) die("epoll_ctl add");
    }
    if (pairs_open == pairs_limit) set_listening(0);
}

/* Moves what can move for pair `slot`; returns 0 when the pair is done. */
static int pump(int slot) {
    struct pair *p = &pairs[slot];
    if (p->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(p->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) {
            if (!quiet) fprintf(stderr, "ringlet-forward: connect: %s\n", strerror(err));
            return 0;
        }
        /* No error yet is not connected yet: only a peer name says so. */
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        if (getpeername(p->fd[1], (struct sockaddr *)&peer, &plen) < 0) {
            if (errno == ENOTCONN) return 1;
            return 0;
        }
        p->connecting = 0;
    }
    for (int s = 0; s < 2; s++) {
        struct dir *d = &p->d[s];
        int from = p->fd[s], to = p->fd[1 - s];
        /* Read while there is room (pending bytes moved to the front first). */
        if (d->start == d->end) {
            d->start = d->end = 0;
        } else if (d->end == BUF_BYTES && d->start > 0) {
            memmove(d->buf, d->buf + d->start, d->end - d->start);
            d->end -= d->start;
            d->start = 0;
        }
        while (!d->eof && d->end < BUF_BYTES) {
            ssize_t n = read(from, d->buf + d->end, BUF_BYTES - d->end);
            if (n > 0) { d->end += (size_t)n; d->bytes += (unsigned long long)n; p->last_ms = now_ms(); }
            else if (n == 0) d->eof = 1;
            else if (errno == EINTR) continue;
            else if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            else return 0; /* reset: drop both sides */
        }
        /* Write what is pending. */
        while (d->end > d->start) {
            ssize_t n = send(to, d->buf + d->start, d->end - d->start, MSG_NOSIGNAL);
            if (n > 0) { d->start += (size_t)n; p->last_ms = now_ms(); }
            else if (n < 0 && errno == EINTR) continue;
            else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            else return 0;
        }
        if (d->start == d->end) d->start = d->end = 0;
        /* Pass the FIN on once everything before it is written. */
        if (d->eof && !d->shut && d->end == d->start) {
            shutdown(to, SHUT_WR);
            d->shut = 1;
        }
    }
    return !(p->d[0].shut && p->d[1].shut);
}

static void usage(void) {
    fprintf(stderr, "usage: ringlet-forward [-q] [-n MAX] LISTEN_ADDR:PORT TARGET_ADDR:PORT\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct sockaddr_in listen_addr;
    int opt;
    while ((opt = getopt(argc, argv, "qn:")) != -1) {
        if (opt == 'q') quiet = 1;
        else if (opt == 'n') {
            pairs_limit = atoi(optarg);
            if (pairs_limit < 1 || pairs_limit > PAIRS_MAX) usage();
        } else usage();
    }
    if (argc - optind != 2) usage();
    if (parse_addr(argv[optind], &listen_addr) || parse_addr(argv[optind + 1], &target)
        || target.sin_port == 0)
        usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) die("bind");
    if (listen(lfd, BACKLOG) < 0) die("listen");
    socklen_t alen = sizeof listen_addr;
    if (getsockname(lfd, (struct sockaddr *)&listen_addr, &alen) < 0) die("getsockname");
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event le = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) < 0) die("epoll_ctl listener");

    char la[INET_ADDRSTRLEN], ta[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &listen_addr.sin_addr, la, sizeof la);
    inet_ntop(AF_INET, &target.sin_addr, ta, sizeof ta);
    printf("ringlet-forward: listening on %s:%u -> %s:%u\n", la, ntohs(listen_addr.sin_port), ta,
           ntohs(target.sin_port));
    fflush(stdout);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct epoll_event events[EVENTS_MAX];
    while (!stop) {
        /* Wake at least once a second for the connect and idle bounds. */
        int n = epoll_wait(ep, events, EVENTS_MAX, 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            uint64_t t = events[i].data.u64;
            if (t == UINT64_MAX) { accept_one(); continue; }
            int slot = (int)(t >> 1);
            if (!pairs[slot].used) continue; /* closed earlier in this batch */
            if (!pump(slot)) close_pair(slot, "done or reset");
            else update(slot);
        }
        uint64_t now = now_ms();
        for (int slot = 0; slot < pairs_limit; slot++) {
            struct pair *p = &pairs[slot];
            if (!p->used) continue;
            if (p->connecting && now - p->started_ms > CONNECT_MS) close_pair(slot, "connect timed out");
            else if (now - p->last_ms > IDLE_MS) close_pair(slot, "idle");
        }
    }
    return 0;
}
