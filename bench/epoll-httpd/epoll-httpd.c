/*
 * epoll-httpd: the minimal epoll HTTP/1.1 server of `cargo xtask bench xen`.
 *
 * The baseline a Linux domU gets when someone writes the smallest sensible
 * server by hand: one thread, one level-triggered epoll set, non-blocking
 * sockets, every file of the document root read into memory at start and
 * sent with writev. It is what the Ringlet httpd appliance is compared with
 * besides nginx (docs/benchmarks.md, section "Xen").
 *
 *   epoll-httpd [-p PORT] [-q] DOCROOT
 *
 * Serves the regular files directly inside DOCROOT as /NAME (GET and HEAD).
 * HTTP/1.1 keeps the connection open unless the request says
 * `Connection: close`; HTTP/1.0 closes unless it says `keep-alive` (and is
 * then answered with `Connection: keep-alive`, as ab -k expects).
 * Pipelined requests are answered in order. Prints
 * `epoll-httpd: listening on port N, M files` once ready (N is the real
 * port when PORT is 0); -q prints nothing else.
 *
 * Bounds (everything a client sends is untrusted): a request head is at
 * most REQ_BYTES_MAX bytes (431 and close beyond), at most QUEUED_MAX
 * answers wait per connection (reading pauses until they drain), at most
 * CONNS_MAX connections (new ones are closed at once beyond), at most
 * FILES_MAX files of FILE_BYTES_MAX bytes each.
 *
 * Build: gcc -static -O2 -o epoll-httpd epoll-httpd.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Bound on a request head (request line and headers), bytes. */
#define REQ_BYTES_MAX 8192
/* Bound on answers queued per connection (pipelining depth served at once). */
#define QUEUED_MAX 64
/* Bound on open client connections. */
#define CONNS_MAX 4096
/* Bound on the files served, and on each file's size. */
#define FILES_MAX 64
#define FILE_BYTES_MAX (64u << 20)
/* Bound on a file name served (the part after '/'). */
#define NAME_BYTES_MAX 128
/* Bound on iovecs handed to one writev (two per answer). */
#define IOV_MAX_USED (2 * QUEUED_MAX)
/* Reads per readiness event, so one busy client cannot starve the others. */
#define READS_PER_EVENT_MAX 16
/* Events taken from epoll per wait. */
#define EVENTS_MAX 256

struct file {
    char name[NAME_BYTES_MAX + 1];
    char *data;
    size_t len;
    /* Heads for keep-alive (HTTP/1.1, and HTTP/1.0 which must be told),
     * and for close, built once. */
    char head_keep[256];
    size_t head_keep_len;
    char head_keep10[256];
    size_t head_keep10_len;
    char head_close[256];
    size_t head_close_len;
};

/* One queued answer: a head, then a body (either may be empty). */
struct answer {
    const char *head;
    size_t head_len;
    const char *body;
    size_t body_len;
    /* Bytes of head + body already written. */
    size_t done;
    /* Close the connection once this answer is written. */
    int close_after;
};

struct conn {
    int fd;
    char req[REQ_BYTES_MAX];
    size_t req_len;
    struct answer queue[QUEUED_MAX];
    unsigned head, count;
    /* No more requests are read: an answer that closes is queued. */
    int closing;
    /* The client closed its side; close once everything is answered. */
    int eof;
    /* Events currently registered with epoll. */
    uint32_t events;
};

static struct file files[FILES_MAX];
static size_t file_count;
static int quiet;
static int epfd;

/* Fixed answers for errors; each closes the connection. */
static const char ANSWER_400[] = "HTTP/1.1 400 Bad Request\r\nServer: epoll-httpd\r\n"
                                 "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char ANSWER_404_KEEP[] = "HTTP/1.1 404 Not Found\r\nServer: epoll-httpd\r\n"
                                      "Content-Length: 0\r\n\r\n";
static const char ANSWER_404_KEEP10[] = "HTTP/1.1 404 Not Found\r\nServer: epoll-httpd\r\n"
                                        "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n";
static const char ANSWER_404_CLOSE[] = "HTTP/1.1 404 Not Found\r\nServer: epoll-httpd\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char ANSWER_405[] = "HTTP/1.1 405 Method Not Allowed\r\nServer: epoll-httpd\r\n"
                                 "Allow: GET, HEAD\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
static const char ANSWER_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                 "Server: epoll-httpd\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
static const char ANSWER_505[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                                 "Server: epoll-httpd\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("epoll-httpd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_BYTES_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '%' || c == '?' || c == '#')
            return 0;
    }
    return 1;
}

static void load_file(const char *dir, const char *name)
{
    if (file_count == FILES_MAX)
        die("more than %d files in %s", FILES_MAX, dir);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        die("path too long: %s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    if ((uintmax_t)st.st_size > FILE_BYTES_MAX)
        die("%s is larger than %u bytes", path, FILE_BYTES_MAX);
    struct file *f = &files[file_count];
    f->len = (size_t)st.st_size;
    f->data = malloc(f->len ? f->len : 1);
    if (!f->data)
        die("out of memory reading %s", path);
    size_t got = 0;
    while (got < f->len) {
        ssize_t n = read(fd, f->data + got, f->len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("read %s: %s", path, n < 0 ? strerror(errno) : "file shrank");
        got += (size_t)n;
    }
    close(fd);
    snprintf(f->name, sizeof f->name, "%s", name);
    const char *type = "application/octet-stream";
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".txt") == 0)
        type = "text/plain";
    else if (n > 5 && strcmp(name + n - 5, ".html") == 0)
        type = "text/html";
    f->head_keep_len = (size_t)snprintf(f->head_keep, sizeof f->head_keep,
                                        "HTTP/1.1 200 OK\r\nServer: epoll-httpd\r\n"
                                        "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                                        type, f->len);
    f->head_keep10_len = (size_t)snprintf(f->head_keep10, sizeof f->head_keep10,
                                          "HTTP/1.1 200 OK\r\nServer: epoll-httpd\r\n"
                                          "Content-Type: %s\r\nContent-Length: %zu\r\n"
                                          "Connection: keep-alive\r\n\r\n",
                                          type, f->len);
    f->head_close_len = (size_t)snprintf(f->head_close, sizeof f->head_close,
                                         "HTTP/1.1 200 OK\r\nServer: epoll-httpd\r\n"
                                         "Content-Type: %s\r\nContent-Length: %zu\r\n"
                                         "Connection: close\r\n\r\n",
                                         type, f->len);
    file_count++;
}

static void load_docroot(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        die("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (valid_name(e->d_name))
            load_file(dir, e->d_name);
    }
    closedir(d);
}

static const struct file *find_file(const char *name, size_t len)
{
    for (size_t i = 0; i < file_count; i++) {
        if (strlen(files[i].name) == len && memcmp(files[i].name, name, len) == 0)
            return &files[i];
    }
    return NULL;
}

static void set_events(struct conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl MOD: %s", strerror(errno));
    c->events = events;
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

static void enqueue(struct conn *c, const char *head, size_t head_len, const char *body,
                    size_t body_len, int close_after)
{
    /* Callers check for room first. */
    struct answer *a = &c->queue[(c->head + c->count) % QUEUED_MAX];
    a->head = head;
    a->head_len = head_len;
    a->body = body;
    a->body_len = body_len;
    a->done = 0;
    a->close_after = close_after;
    c->count++;
    if (close_after)
        c->closing = 1;
}

static void enqueue_fixed(struct conn *c, const char *answer, size_t len, int close_after)
{
    enqueue(c, answer, len, NULL, 0, close_after);
}

/* Case-insensitive search for a token in a comma-separated header value. */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t t = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == t && strncasecmp(v + start, token, t) == 0)
            return 1;
    }
    return 0;
}

/*
 * Handles one complete request head req[0..len) (ending in CRLF CRLF):
 * queues its answer. The caller made sure the queue has room.
 */
static void handle_request(struct conn *c, const char *req, size_t len)
{
    const char *end = req + len;
    const char *line_end = memmem(req, len, "\r\n", 2);
    if (!line_end) {
        enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
        return;
    }
    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    const char *sp1 = memchr(req, ' ', (size_t)(line_end - req));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == req || sp2 == sp1 + 1) {
        enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
        return;
    }
    size_t method_len = (size_t)(sp1 - req);
    const char *target = sp1 + 1;
    size_t target_len = (size_t)(sp2 - target);
    const char *version = sp2 + 1;
    size_t version_len = (size_t)(line_end - version);
    int http10;
    if (version_len == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
        http10 = 0;
    else if (version_len == 8 && memcmp(version, "HTTP/1.0", 8) == 0)
        http10 = 1;
    else if (version_len >= 5 && memcmp(version, "HTTP/", 5) == 0) {
        enqueue_fixed(c, ANSWER_505, sizeof ANSWER_505 - 1, 1);
        return;
    } else {
        enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
        return;
    }
    int head_only;
    if (method_len == 3 && memcmp(req, "GET", 3) == 0)
        head_only = 0;
    else if (method_len == 4 && memcmp(req, "HEAD", 4) == 0)
        head_only = 1;
    else {
        enqueue_fixed(c, ANSWER_405, sizeof ANSWER_405 - 1, 1);
        return;
    }

    /* Headers: only Connection matters; a body is refused. */
    int keep_alive = !http10;
    const char *p = line_end + 2;
    while (p < end) {
        const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!e) {
            enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
            return;
        }
        if (e == p)
            break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon || colon == p) {
            enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
            return;
        }
        size_t name_len = (size_t)(colon - p);
        const char *value = colon + 1;
        size_t value_len = (size_t)(e - value);
        if (name_len == 10 && strncasecmp(p, "Connection", 10) == 0) {
            if (has_token(value, value_len, "close"))
                keep_alive = 0;
            else if (has_token(value, value_len, "keep-alive"))
                keep_alive = 1;
        } else if ((name_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) ||
                   (name_len == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)) {
            /* GET and HEAD with a body: not worth the risk of desync. */
            enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
            return;
        }
        p = e + 2;
    }

    /* Target: /NAME, an optional query ignored. */
    size_t path_len = target_len;
    const char *q = memchr(target, '?', target_len);
    if (q)
        path_len = (size_t)(q - target);
    if (path_len < 1 || target[0] != '/') {
        enqueue_fixed(c, ANSWER_400, sizeof ANSWER_400 - 1, 1);
        return;
    }
    const struct file *f = find_file(target + 1, path_len - 1);
    if (!f) {
        if (keep_alive && http10)
            enqueue_fixed(c, ANSWER_404_KEEP10, sizeof ANSWER_404_KEEP10 - 1, 0);
        else if (keep_alive)
            enqueue_fixed(c, ANSWER_404_KEEP, sizeof ANSWER_404_KEEP - 1, 0);
        else
            enqueue_fixed(c, ANSWER_404_CLOSE, sizeof ANSWER_404_CLOSE - 1, 1);
        return;
    }
    const char *head = f->head_close;
    size_t head_len = f->head_close_len;
    if (keep_alive && http10) {
        head = f->head_keep10;
        head_len = f->head_keep10_len;
    } else if (keep_alive) {
        head = f->head_keep;
        head_len = f->head_keep_len;
    }
    enqueue(c, head, head_len, f->data, head_only ? 0 : f->len, !keep_alive);
}

/*
 * Parses and queues every complete request in the buffer while the queue has
 * room. Returns 1 when it stopped at a full queue with input left over.
 */
static int parse_requests(struct conn *c)
{
    size_t off = 0;
    while (!c->closing && c->count < QUEUED_MAX && off < c->req_len) {
        /* Tolerate empty lines between requests (RFC 9112 section 2.2). */
        if (c->req[off] == '\r' || c->req[off] == '\n') {
            off++;
            continue;
        }
        const char *end = memmem(c->req + off, c->req_len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t len = (size_t)(end - (c->req + off)) + 4;
        handle_request(c, c->req + off, len);
        off += len;
    }
    if (off > 0) {
        memmove(c->req, c->req + off, c->req_len - off);
        c->req_len -= off;
    }
    if (!c->closing && c->count < QUEUED_MAX && c->req_len == REQ_BYTES_MAX)
        enqueue_fixed(c, ANSWER_431, sizeof ANSWER_431 - 1, 1);
    return !c->closing && c->count == QUEUED_MAX && c->req_len > 0;
}

/* Writes queued answers; returns -1 when the connection is to be closed. */
static int flush(struct conn *c)
{
    while (c->count > 0) {
        struct iovec iov[IOV_MAX_USED];
        int n = 0;
        for (unsigned i = 0; i < c->count && n + 2 <= IOV_MAX_USED; i++) {
            struct answer *a = &c->queue[(c->head + i) % QUEUED_MAX];
            size_t done = a->done;
            if (done < a->head_len) {
                iov[n].iov_base = (void *)(a->head + done);
                iov[n].iov_len = a->head_len - done;
                n++;
                done = a->head_len;
            }
            size_t body_done = done - a->head_len;
            if (body_done < a->body_len) {
                iov[n].iov_base = (void *)(a->body + body_done);
                iov[n].iov_len = a->body_len - body_done;
                n++;
            }
            if (a->close_after)
                break; /* nothing after a closing answer */
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        size_t left = (size_t)w;
        while (c->count > 0) {
            struct answer *a = &c->queue[c->head];
            size_t total = a->head_len + a->body_len;
            size_t take = total - a->done < left ? total - a->done : left;
            a->done += take;
            left -= take;
            if (a->done < total)
                break;
            c->head = (c->head + 1) % QUEUED_MAX;
            c->count--;
            if (a->close_after)
                return -1;
        }
    }
    return 0;
}

/* Reads, answers, and chooses the events to wait for; -1 to close. */
static int serve(struct conn *c, uint32_t ready)
{
    if (ready & EPOLLERR)
        return -1;
    for (int reads = 0;;) {
        /* Answer what is buffered, as far as the socket takes it. */
        int more = parse_requests(c);
        if (flush(c) < 0)
            return -1;
        if (c->count > 0) {
            set_events(c, EPOLLOUT); /* the socket is full */
            return 0;
        }
        if (c->eof)
            return -1; /* everything asked was answered */
        if (more)
            continue; /* complete requests wait behind a full queue */
        if (reads == READS_PER_EVENT_MAX) {
            set_events(c, EPOLLIN); /* let other connections run */
            return 0;
        }
        /* parse_requests answered 431 to a full buffer, so there is room. */
        ssize_t r = read(c->fd, c->req + c->req_len, REQ_BYTES_MAX - c->req_len);
        reads++;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLIN);
            return 0;
        }
        if (r < 0)
            return -1;
        if (r == 0)
            c->eof = 1; /* answer what is complete, then close */
        c->req_len += (size_t)r;
    }
}

static void accept_all(int lfd, size_t *open_conns)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                return; /* try again on the next readiness */
            die("accept4: %s", strerror(errno));
        }
        if (*open_conns >= CONNS_MAX) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->req_len = 0;
        c->head = c->count = 0;
        c->closing = 0;
        c->eof = 0;
        c->events = EPOLLIN;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        (*open_conns)++;
    }
}

int main(int argc, char **argv)
{
    long port = 80;
    int opt;
    while ((opt = getopt(argc, argv, "p:q")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            port = strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535)
                die("bad port %s", optarg);
            break;
        }
        case 'q':
            quiet = 1;
            break;
        default:
            die("usage: epoll-httpd [-p PORT] [-q] DOCROOT");
        }
    }
    if (optind + 1 != argc)
        die("usage: epoll-httpd [-p PORT] [-q] DOCROOT");
    signal(SIGPIPE, SIG_IGN);
    /* Room for CONNS_MAX connections plus the few other descriptors. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < CONNS_MAX + 16) {
        nofile.rlim_cur = nofile.rlim_max < CONNS_MAX + 16 ? nofile.rlim_max : CONNS_MAX + 16;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    load_docroot(argv[optind]);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind port %ld: %s", port, strerror(errno));
    if (listen(lfd, 1024) < 0)
        die("listen: %s", strerror(errno));
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
        die("getsockname: %s", strerror(errno));

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    /* The listening socket is marked by a NULL pointer. */
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl ADD: %s", strerror(errno));

    printf("epoll-httpd: listening on port %u, %zu files\n", ntohs(addr.sin_port), file_count);
    fflush(stdout);

    size_t open_conns = 0;
    struct epoll_event events[EVENTS_MAX];
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS_MAX, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                accept_all(lfd, &open_conns);
                continue;
            }
            if (serve(c, events[i].events) < 0) {
                conn_close(c);
                open_conns--;
            }
        }
    }
}
