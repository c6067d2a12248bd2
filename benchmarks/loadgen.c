/*
 * loadgen: a single-threaded epoll load generator for WebSocket servers.
 *
 * Protocols (--proto):
 *   rfc6455  Sec-WebSocket-Version: 13, masked client frames (new random
 *            mask per frame), 101 + Sec-WebSocket-Accept validated.
 *   hybi08   Same framing, Sec-WebSocket-Version: 8 and
 *            Sec-WebSocket-Origin, accept key validated.
 *   hixie76  Sec-WebSocket-Key1/Key2 + 8-byte key3, the 16-byte MD5
 *            answer validated, 0x00 <utf-8> 0xFF text frames.
 *   raw      Plain TCP echo: send N bytes, expect the same N bytes back.
 *
 * --deflate (rfc6455, hybi08): offer permessage-deflate (RFC 7692) with
 *   client_max_window_bits, fail unless the server accepts it, and send
 *   every message compressed (RSV1, raw DEFLATE, Z_SYNC_FLUSH, the trailing
 *   00 00 ff ff removed) with one zlib compressor per connection that
 *   honours the agreed client window and client_no_context_takeover;
 *   received messages with RSV1 are inflated (one inflater per connection,
 *   reset per message under server_no_context_takeover) and checked like
 *   any other echo. With --scenario idle, each connection first echoes one
 *   message, so both sides hold their compression state while idle.
 * --json: each message is a different chat-like JSON text of about --size
 *   bytes (size +- 25%), instead of one fixed pattern; every connection
 *   remembers what it sent and checks each echo against it (echo, latency
 *   and idle only).
 *
 * Scenarios (--scenario):
 *   echo        --conns C --inflight K --size S: round trips per second
 *               (the "large" benchmark is echo with 10 x 4 x 64 KiB).
 *   latency     echo with 1 connection and 1 message in flight: p50/p99.
 *   broadcast   --receivers R: R receivers and one sender that keeps at
 *               most --window messages outstanding (measured by
 *               deliveries; 1: the next message once the previous one
 *               reached every receiver); deliveries per second at the
 *               receivers, and p50/p99 delivery latency (from the send to
 *               each receiver's arrival: every message starts with its
 *               sequence number in 16 hex digits, so each receiver knows
 *               which send it got and checks that none was lost,
 *               duplicated or reordered).
 *   handshakes  --conns concurrent slots: connect, handshake, send a close
 *               frame, wait for the server's close frame and its TCP close.
 *   idle        --conns N connections opened (handshake done), then held
 *               until --duration passes or SIGTERM; prints "READY n".
 *   probe       one connection, handshake, exit (readiness check).
 *
 * Every loop is bounded: a setup timeout, the run deadline, per-connection
 * timeouts, a progress watchdog, and alarm() as a last resort. Only
 * 127.0.0.1 is ever connected to.
 *
 * Output: one JSON object on the last line of stdout.
 *
 * Build: gcc -O2 -o loadgen loadgen.c -lz      Self-test: ./loadgen --selftest
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* t - since, or 0 when since is later (it may be set after t was read) */
#define AGE(t, since) ((t) > (since) ? (t) - (since) : 0)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng64(void) { /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rng32(void) { return (uint32_t)(rng64() >> 32); }

static void rng_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rng64() >> 56);
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------------ */
/* SHA-1 (FIPS 180-4), MD5 (RFC 1321), base64                          */
/* ------------------------------------------------------------------ */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t *buf = calloc(1, total);
    if (!buf) die("out of memory");
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[off + 4 * i] << 24 | (uint32_t)buf[off + 4 * i + 1] << 16 |
                   (uint32_t)buf[off + 4 * i + 2] << 8 | buf[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = rol32(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol32(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(buf);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static void md5(const uint8_t *msg, size_t len, uint8_t out[16]) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476;
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t *buf = calloc(1, total);
    if (!buf) die("out of memory");
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[total - 8 + i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t m[16];
        for (int i = 0; i < 16; i++)
            m[i] = (uint32_t)buf[off + 4 * i] | (uint32_t)buf[off + 4 * i + 1] << 8 |
                   (uint32_t)buf[off + 4 * i + 2] << 16 | (uint32_t)buf[off + 4 * i + 3] << 24;
        uint32_t a = h0, b = h1, c = h2, d = h3;
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            if (i < 16) { f = (b & c) | (~b & d); g = i; }
            else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
            else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
            else { f = c ^ (b | ~d); g = (7 * i) % 16; }
            uint32_t t = d;
            d = c;
            c = b;
            b = b + rol32(a + f + K[i] + m[g], R[i]);
            a = t;
        }
        h0 += a; h1 += b; h2 += c; h3 += d;
    }
    free(buf);
    uint32_t hs[4] = {h0, h1, h2, h3};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(hs[i] >> (8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = T[(v >> 18) & 63];
        out[o++] = T[(v >> 12) & 63];
        out[o++] = i + 1 < n ? T[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? T[v & 63] : '=';
    }
    out[o] = 0;
}

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void accept_key(const char *key, char out[32]) {
    char cat[128];
    uint8_t dig[20];
    snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    sha1((const uint8_t *)cat, strlen(cat), dig);
    base64(dig, 20, out);
}

/* Hixie-76: the number a key encodes is its digits divided by its spaces. */
static int hixie_key_number(const char *key, uint32_t *out) {
    uint64_t digits = 0;
    unsigned spaces = 0;
    for (const char *p = key; *p; p++) {
        if (*p >= '0' && *p <= '9') digits = digits * 10 + (uint64_t)(*p - '0');
        else if (*p == ' ') spaces++;
    }
    if (spaces == 0 || digits % spaces) return -1;
    *out = (uint32_t)(digits / spaces);
    return 0;
}

static void hixie_answer(uint32_t n1, uint32_t n2, const uint8_t key3[8], uint8_t out[16]) {
    uint8_t ch[16];
    for (int i = 0; i < 4; i++) {
        ch[i] = (uint8_t)(n1 >> (24 - 8 * i));
        ch[4 + i] = (uint8_t)(n2 >> (24 - 8 * i));
    }
    memcpy(ch + 8, key3, 8);
    md5(ch, 16, out);
}

/* Build a Hixie-76 key as a browser does (draft-76 section 4.1 step 17-21). */
static uint32_t hixie_make_key(char *out, size_t cap) {
    unsigned spaces = 1 + rng32() % 12;
    uint32_t max = 4294967295u / spaces;
    uint32_t number = (uint32_t)(rng64() % ((uint64_t)max + 1));
    uint64_t product = (uint64_t)number * spaces;
    char s[64];
    int len = snprintf(s, sizeof s, "%llu", (unsigned long long)product);
    /* insert 1..12 random non-digit, non-space printable characters */
    unsigned extra = 1 + rng32() % 12;
    for (unsigned i = 0; i < extra; i++) {
        char ch;
        do { ch = (char)(0x21 + rng32() % (0x7E - 0x21 + 1)); } while (ch >= '0' && ch <= '9');
        int pos = (int)(rng32() % (unsigned)(len + 1));
        memmove(s + pos + 1, s + pos, (size_t)(len - pos + 1));
        s[pos] = ch;
        len++;
    }
    /* insert the spaces, never first nor last */
    for (unsigned i = 0; i < spaces; i++) {
        int pos = 1 + (int)(rng32() % (unsigned)(len - 1));
        memmove(s + pos + 1, s + pos, (size_t)(len - pos + 1));
        s[pos] = ' ';
        len++;
    }
    snprintf(out, cap, "%s", s);
    return number;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

enum { P_RFC6455, P_HYBI08, P_HIXIE76, P_RAW };
enum { S_ECHO, S_LATENCY, S_BROADCAST, S_HANDSHAKES, S_IDLE, S_PROBE };

static struct {
    int proto;
    int scenario;
    int port;
    int conns;
    int inflight;
    size_t size;
    double warmup;
    double duration;
    double setup_timeout;
    double conn_timeout;
    double stall_timeout;
    double close_timeout;
    int receivers;
    int window;
    int max_pending;
    int server_pid;
    int max_samples;
    int deflate; /* offer and use permessage-deflate */
    int json;    /* varied JSON messages instead of the fixed pattern */
    const char *path;
} cfg = {
    .proto = P_RFC6455, .scenario = S_ECHO, .port = 0, .conns = 50, .inflight = 8, .size = 32,
    .warmup = 1.0, .duration = 5.0, .setup_timeout = 60.0, .conn_timeout = 5.0,
    .stall_timeout = 3.0, .close_timeout = 5.0, .receivers = 1000, .window = 10, .max_pending = 64,
    .server_pid = 0, .max_samples = 8 * 1024 * 1024, .path = "/",
};

static const char *proto_names[] = {"rfc6455", "hybi08", "hixie76", "raw"};
static const char *scen_names[] = {"echo", "latency", "broadcast", "handshakes", "idle", "probe"};

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

enum {
    C_FREE,        /* no socket */
    C_CONNECTING,  /* TCP connect in progress */
    C_HANDSHAKE,   /* request sent, waiting for the answer */
    C_OPEN,        /* frames flow */
    C_CLOSING,     /* we sent a close frame, waiting for the server's */
    C_WAIT_EOF,    /* got the server's close frame, waiting for its FIN */
    C_DEAD,        /* failed or closed; not reopened */
};

enum { ROLE_ECHO, ROLE_RECEIVER, ROLE_SENDER, ROLE_SLOT, ROLE_IDLE };

typedef struct {
    int fd;
    int state;
    int role;
    uint64_t t_state; /* when the current connecting/handshaking/closing state began */
    /* handshake */
    char hs[8192];
    size_t hslen;
    char accept[32];
    uint8_t md5[16];
    /* output */
    uint8_t *out;
    size_t outlen, outoff, outcap;
    int wblocked;
    int rd_pending;
    /* frame parser (server to client) */
    int ps;          /* parser state */
    uint8_t hdr[14];
    int hlen, hneed;
    uint64_t remain; /* payload bytes left in the current frame */
    int opcode;      /* opcode of the current frame */
    int msg_opcode;  /* opcode of the message being assembled (for continuations) */
    int fin;
    uint64_t msglen; /* bytes of the current message so far */
    uint8_t ctrl[125];
    int ctrllen;
    uint64_t hixie_lenval;
    /* accounting */
    uint64_t msgs;
    int inflight;
    uint64_t *ts; /* send times of in-flight messages (ring) */
    int ts_head, ts_count;
    int ready;    /* counts as open for the setup phase (idle + deflate: its echo is back) */
    /* broadcast receiver: the sequence number of the message arriving, the last one received */
    uint64_t bc_seq_in, bc_last_seq;
    /* --json: the messages sent and not yet echoed (ring of mq_cap slots) */
    uint8_t *mq;
    uint32_t *mqlen;
    int mq_head, mq_count, mq_cap;
    /* permessage-deflate, as agreed in the handshake */
    int pmd;
    int pmd_srv_bits, pmd_cli_bits; /* server's window (our inflater), ours (our compressor) */
    int pmd_srv_nct, pmd_cli_nct;   /* server_/client_no_context_takeover */
    int msg_compressed;             /* the message being received has RSV1 set */
    int zd_on, zi_on;               /* compressor / inflater initialised */
    z_stream zd, zi;
} conn_t;

static conn_t *conns;
static int nconns;
static int epfd;
static uint8_t *pattern; /* message content: printable ASCII */
static size_t pattern_len;
static uint8_t rbuf[256 * 1024];

/* counters */
static uint64_t c_msgs, c_deliveries, c_hs_done, c_opened, c_errors, c_proto_errors,
    c_mismatch, c_unexpected_close, c_timeouts, c_conn_fail, c_stalls, c_pings, c_sent_msgs,
    c_no_server_close;
static int phase; /* 0 setup, 1 run, 2 done */
static int measuring;
static uint64_t t_run_start, t_measure_start, t_measure_end, t_last_progress;
static volatile sig_atomic_t stop_flag;
static char first_error[256];
static char close_problem[256];
static uint64_t c_close_problems, c_closed_clean;
static uint32_t *samples;
static size_t nsamples;
static int broadcast_probe_done;
static uint64_t bc_base_sent, bc_base_deliv, bc_last_deliv_t;
static int receivers_seen;
/* broadcast: send times by sequence number (a ring), the next number */
#define BC_SEQ_DIGITS 16
#define BC_RING (1u << 20)
static uint64_t *bc_sent_t;
static uint64_t bc_next_seq;
static uint64_t c_bc_gaps, c_bc_unsampled;
static uint8_t *bc_msg; /* the sender's message: sequence number, then the pattern */
static int pending_reads[65536];
static int npending_reads;
static int busy_poll = 0;
/* permessage-deflate accounting */
static uint64_t c_msg_bytes_out; /* application bytes of every message sent */
static uint64_t c_z_in, c_plain_in, c_z_out, c_wire_out, c_raw_out, c_wire_in, c_raw_in;
static char pmd_answer[256]; /* the first Sec-WebSocket-Extensions answer */
static size_t mq_slot;       /* bytes per --json ring slot */

static void note_error(const char *fmt, ...) {
    c_errors++;
    if (first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_error, sizeof first_error, fmt, ap);
    va_end(ap);
}

static void out_reserve(conn_t *c, size_t more) {
    if (c->outoff && c->outoff == c->outlen) c->outoff = c->outlen = 0;
    if (c->outlen + more <= c->outcap) return;
    if (c->outoff) { /* compact */
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
        if (c->outlen + more <= c->outcap) return;
    }
    size_t cap = c->outcap ? c->outcap : 4096;
    while (cap < c->outlen + more) cap *= 2;
    c->out = realloc(c->out, cap);
    if (!c->out) die("out of memory");
    c->outcap = cap;
}

static void out_append(conn_t *c, const void *p, size_t n) {
    out_reserve(c, n);
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

/* Copy n bytes of src XORed with the 4-byte mask into dst. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t m[4]) {
    uint64_t m64;
    uint8_t m8[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    memcpy(&m64, m8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = src[i] ^ m[i & 3];
}

/* Queue a client frame (RFC 6455 / HyBi-08): masked with a fresh mask.
 * rsv: RSV bits to set (0x40: RSV1, a compressed message). */
static void queue_ws_frame(conn_t *c, int rsv, int opcode, const uint8_t *payload, size_t n) {
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)(0x80 | rsv | opcode);
    if (n < 126) {
        h[hl++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t mk = rng32();
    uint8_t m[4];
    memcpy(m, &mk, 4);
    memcpy(h + hl, m, 4);
    hl += 4;
    out_reserve(c, hl + n);
    memcpy(c->out + c->outlen, h, hl);
    mask_copy(c->out + c->outlen + hl, payload, n, m);
    c->outlen += hl + n;
}

/* ---- --json: chat-like messages, different every time ---- */

static const char *const json_words[] = {
    "hey", "hi", "all", "anyone", "around", "tonight", "the", "build", "is", "green", "again",
    "did", "you", "see", "new", "release", "notes", "lunch", "at", "noon", "meeting", "moved",
    "to", "three", "thanks", "sounds", "good", "ok", "will", "check", "later", "deploy",
    "finished", "coffee", "ping", "me", "when", "ready", "great", "work", "team", "weekend",
    "plans", "looks", "like", "rain", "merged", "your", "branch", "tests", "pass", "on", "my",
    "machine", "can", "we", "ship", "it", "today", "tomorrow", "maybe", "after", "review",
    "please", "a", "few", "minutes", "late", "sorry", "for", "that", "nice", "one", "lol",
    "agreed", "question", "about", "logs", "dashboard", "server", "restart", "done"};
static const char *const json_rooms[] = {"lobby", "general", "random", "dev", "support"};

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* The largest message make_json writes for cfg.size, plus room. */
static size_t json_max_len(void) { return cfg.size + cfg.size / 4 + 256; }

/* Write a chat message of about cfg.size bytes (+- 25%) into out (json_max_len() bytes). */
static size_t make_json(conn_t *c, uint8_t *out) {
    static uint64_t seq;
    size_t cap = json_max_len();
    size_t spread = cfg.size / 4;
    size_t target = cfg.size - spread + (size_t)(rng64() % (2 * spread + 1));
    int n = snprintf((char *)out, cap,
                     "{\"type\":\"chat\",\"room\":\"%s\",\"user\":\"user%ld\",\"seq\":%llu,"
                     "\"ts\":%llu,\"text\":\"",
                     json_rooms[rng32() % (sizeof json_rooms / sizeof *json_rooms)], (long)(c - conns),
                     (unsigned long long)++seq, (unsigned long long)wall_ms());
    size_t len = (size_t)n;
    int words = 0;
    for (;;) {
        const char *w = json_words[rng32() % (sizeof json_words / sizeof *json_words)];
        size_t wl = strlen(w);
        if (words && len + 1 + wl + 2 > target) break;
        if (len + 1 + wl + 2 > cap) break;
        if (words) out[len++] = ' ';
        memcpy(out + len, w, wl);
        len += wl;
        words++;
    }
    out[len++] = '"';
    out[len++] = '}';
    return len;
}

/* ---- permessage-deflate: compression (client to server) ---- */

/* zlib level of our compressor. Level 1 (zlib's fastest) keeps the load
 * generator's CPU low: at the default level 6, zlib's match search on
 * repetitive JSON costs several times more. The servers inflate either at
 * about the same speed. */
#define PMD_LEVEL 1

static uint8_t *zbuf; /* compressed output of the message being sent */
static size_t zcap;

static void zbuf_grow(size_t need) {
    if (need <= zcap) return;
    size_t cap = zcap ? zcap : 4096;
    while (cap < need) cap *= 2;
    zbuf = realloc(zbuf, cap);
    if (!zbuf) die("out of memory");
    zcap = cap;
}

static void pmd_free(conn_t *c) {
    if (c->zd_on) deflateEnd(&c->zd);
    if (c->zi_on) inflateEnd(&c->zi);
    c->zd_on = c->zi_on = 0;
}

/* Compress one message into zbuf; returns its length without the
 * trailing 00 00 ff ff (RFC 7692 7.2.1). */
static size_t pmd_compress(conn_t *c, const uint8_t *p, size_t n) {
    if (!c->zd_on) {
        int bits = c->pmd_cli_bits, strategy = Z_DEFAULT_STRATEGY;
        if (bits < 9) {
            /* zlib cannot make raw DEFLATE with a 256-byte window; Huffman
             * coding alone refers to no earlier bytes, so fits any window */
            bits = 9;
            strategy = Z_HUFFMAN_ONLY;
        }
        memset(&c->zd, 0, sizeof c->zd);
        if (deflateInit2(&c->zd, PMD_LEVEL, Z_DEFLATED, -bits, 8, strategy) != Z_OK)
            die("deflateInit2 failed");
        c->zd_on = 1;
    }
    zbuf_grow(deflateBound(&c->zd, (uLong)n) + 64);
    size_t used = 0;
    c->zd.next_in = (Bytef *)p;
    c->zd.avail_in = (uInt)n;
    for (;;) {
        c->zd.next_out = zbuf + used;
        c->zd.avail_out = (uInt)(zcap - used);
        int r = deflate(&c->zd, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR) die("deflate: %d", r);
        used = zcap - c->zd.avail_out;
        if (c->zd.avail_out) break; /* all flushed */
        zbuf_grow(zcap * 2);
    }
    if (used < 4 || memcmp(zbuf + used - 4, "\x00\x00\xff\xff", 4) != 0)
        die("deflate: Z_SYNC_FLUSH did not end with 00 00 ff ff");
    if (c->pmd_cli_nct) deflateReset(&c->zd);
    return used - 4;
}

/* Queue one application message: cfg.size bytes of the pattern, or
 * (--json) a new chat message that is remembered until its echo is back. */
static void queue_message(conn_t *c) {
    const uint8_t *msg = pattern;
    size_t len = cfg.size;
    if (c->role == ROLE_SENDER) {
        /* the sequence number first, so receivers can tell which send arrived */
        static const char hex[] = "0123456789abcdef";
        uint64_t seq = bc_next_seq++;
        for (int k = BC_SEQ_DIGITS - 1; k >= 0; k--) {
            bc_msg[k] = (uint8_t)hex[seq & 15];
            seq >>= 4;
        }
        bc_sent_t[(bc_next_seq - 1) & (BC_RING - 1)] = now_ns();
        msg = bc_msg;
    } else if (c->mq) {
        if (c->mq_count >= c->mq_cap) die("internal: more messages in flight than the ring holds");
        int slot = (c->mq_head + c->mq_count) % c->mq_cap;
        uint8_t *m = c->mq + (size_t)slot * mq_slot;
        len = make_json(c, m);
        c->mqlen[slot] = (uint32_t)len;
        c->mq_count++;
        msg = m;
    }
    if (cfg.proto == P_RAW) {
        out_append(c, msg, len);
    } else if (cfg.proto == P_HIXIE76) {
        out_reserve(c, len + 2);
        c->out[c->outlen++] = 0x00;
        memcpy(c->out + c->outlen, msg, len);
        c->outlen += len;
        c->out[c->outlen++] = 0xFF;
    } else if (c->pmd) {
        size_t z = pmd_compress(c, msg, len);
        queue_ws_frame(c, 0x40, 0x1, zbuf, z);
        c_z_out++;
        c_wire_out += z;
        c_raw_out += len;
    } else {
        queue_ws_frame(c, 0, 0x1, msg, len);
    }
    c_sent_msgs++;
    c_msg_bytes_out += len;
    if (c->ts) {
        int cap = cfg.inflight;
        if (c->ts_count < cap) {
            c->ts[(c->ts_head + c->ts_count) % cap] = now_ns();
            c->ts_count++;
        }
    }
}

static void conn_close_fd(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    pmd_free(c);
}

static void conn_abort(conn_t *c) {
    if (c->fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    conn_close_fd(c);
}

static void conn_reset_parser(conn_t *c) {
    c->ps = 0;
    c->hlen = 0;
    c->hneed = 2;
    c->remain = 0;
    c->msglen = 0;
    c->ctrllen = 0;
    c->msg_opcode = 0;
    c->msg_compressed = 0;
}

static int conn_open(conn_t *c);

static void conn_fail(conn_t *c, const char *why) {
    if (c->state == C_DEAD || c->state == C_FREE) return;
    if (phase == 2) { /* after the run: a closing handshake that went wrong */
        c_close_problems++;
        if (!close_problem[0]) snprintf(close_problem, sizeof close_problem, "%s", why);
        conn_abort(c);
        c->state = C_DEAD;
        return;
    }
    note_error("conn %ld: %s", (long)(c - conns), why);
    conn_abort(c);
    c->state = C_DEAD;
    /* handshake slots keep going with a fresh connection (opened by the main loop) */
    if (c->role == ROLE_SLOT && phase == 1 && !stop_flag) c->state = C_FREE;
}

static int flush_out(conn_t *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (w > 0) {
            c->outoff += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->wblocked = 1;
            return 0;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            char why[96];
            snprintf(why, sizeof why, "send: %s", strerror(errno));
            conn_fail(c, why);
            return -1;
        }
    }
    c->outoff = c->outlen = 0;
    c->wblocked = 0;
    return 0;
}

static void send_request(conn_t *c) {
    char req[1024];
    int n;
    if (cfg.proto == P_HIXIE76) {
        char k1[96], k2[96];
        uint8_t key3[8];
        uint32_t n1 = hixie_make_key(k1, sizeof k1);
        uint32_t n2 = hixie_make_key(k2, sizeof k2);
        rng_bytes(key3, 8);
        hixie_answer(n1, n2, key3, c->md5);
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
                     "Host: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1\r\n"
                     "Sec-WebSocket-Key1: %s\r\nSec-WebSocket-Key2: %s\r\n\r\n",
                     cfg.path, cfg.port, k1, k2);
        out_append(c, req, (size_t)n);
        out_append(c, key3, 8);
    } else {
        uint8_t raw[16];
        char key[32];
        rng_bytes(raw, 16);
        base64(raw, 16, key);
        accept_key(key, c->accept);
        const char *ext = cfg.deflate
                              ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                              : "";
        if (cfg.proto == P_HYBI08)
            n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Origin: http://127.0.0.1\r\nSec-WebSocket-Version: 8\r\n%s\r\n",
                         cfg.path, cfg.port, key, ext);
        else
            n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Origin: http://127.0.0.1\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                         cfg.path, cfg.port, key, ext);
        out_append(c, req, (size_t)n);
    }
    flush_out(c);
}

static int conn_open(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error("socket: %s", strerror(errno));
        c_conn_fail++;
        c->state = C_DEAD;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (r < 0 && errno != EINPROGRESS) {
        note_error("connect: %s", strerror(errno));
        c_conn_fail++;
        close(fd);
        c->state = C_DEAD;
        return -1;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->t_state = now_ns();
    c->hslen = 0;
    c->outlen = c->outoff = 0;
    c->wblocked = 0;
    c->rd_pending = 0;
    c->inflight = 0;
    c->ts_head = c->ts_count = 0;
    c->mq_head = c->mq_count = 0;
    c->ready = 0;
    c->bc_seq_in = 0;
    pmd_free(c);
    c->pmd = 0;
    conn_reset_parser(c);
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u32 = (uint32_t)(c - conns);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------ */
/* Scenario callbacks                                                  */
/* ------------------------------------------------------------------ */

static void progress(void) { t_last_progress = now_ns(); }

/* Start the closing handshake: a close frame (1000) or Hixie-76's 0xFF 0x00. */
static void start_close(conn_t *c) {
    if (cfg.proto == P_RAW) { /* no closing handshake: just close */
        conn_close_fd(c);
        c->state = C_FREE;
        c_closed_clean++;
        return;
    }
    if (cfg.proto == P_HIXIE76) {
        static const uint8_t bye[2] = {0xFF, 0x00};
        out_append(c, bye, 2);
    } else {
        static const uint8_t code[2] = {0x03, 0xE8}; /* 1000 */
        queue_ws_frame(c, 0, 0x8, code, 2);
    }
    c->state = C_CLOSING;
    c->t_state = now_ns();
    flush_out(c);
}

static void on_open(conn_t *c) {
    c->state = C_OPEN;
    c->t_state = now_ns();
    c_opened++;
    progress();
    if (c->role == ROLE_SLOT || phase == 2) {
        c->ready = 1;
        start_close(c);
    } else if (c->role == ROLE_IDLE && cfg.deflate) {
        /* one compressed echo first, so both sides hold compression state */
        queue_message(c);
        c->inflight++;
        flush_out(c);
    } else {
        c->ready = 1;
    }
}

static void start_echo_load(conn_t *c) {
    for (int i = 0; i < cfg.inflight; i++) {
        queue_message(c);
        c->inflight++;
    }
    flush_out(c);
}

static void on_message(conn_t *c) {
    uint64_t t = 0;
    c->msgs++;
    progress();
    if (c->role == ROLE_ECHO) {
        c_msgs++;
        if (c->ts && c->ts_count > 0) {
            t = now_ns();
            uint64_t sent = c->ts[c->ts_head];
            c->ts_head = (c->ts_head + 1) % cfg.inflight;
            c->ts_count--;
            if (measuring && samples && nsamples < (size_t)cfg.max_samples) {
                uint64_t d = t - sent;
                samples[nsamples++] = d > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)d;
            }
        }
        c->inflight--;
        if (phase == 1 && !stop_flag) {
            queue_message(c);
            c->inflight++;
        } else if (phase == 2 && c->state == C_OPEN && c->inflight <= 0) {
            start_close(c); /* the last echo is back: close */
        }
    } else if (c->role == ROLE_RECEIVER) {
        uint64_t seq = c->bc_seq_in;
        c->bc_seq_in = 0;
        if (seq >= bc_next_seq) {
            c_mismatch++;
            return conn_fail(c, "a sequence number that was never sent");
        }
        /* a receiver joins at any message (the probes), then gets every one in order */
        if (c->msgs > 1 && seq != c->bc_last_seq + 1) {
            c_bc_gaps++;
            note_error("conn %ld: message %llu after %llu (lost, duplicated or reordered)", (long)(c - conns),
                       (unsigned long long)seq, (unsigned long long)c->bc_last_seq);
        }
        c->bc_last_seq = seq;
        if (c->msgs == 1) receivers_seen++;
        c_deliveries++;
        t = now_ns();
        bc_last_deliv_t = t;
        if (measuring && samples) {
            if (bc_next_seq - seq > BC_RING) {
                c_bc_unsampled++; /* its send time was overwritten in the ring */
            } else if (nsamples < (size_t)cfg.max_samples) {
                uint64_t d = t - bc_sent_t[seq & (BC_RING - 1)];
                samples[nsamples++] = d > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)d;
            }
        }
    } else if (c->role == ROLE_IDLE && cfg.deflate && !c->ready && c->inflight == 1) {
        c->inflight--;
        c->ready = 1;
    } else {
        c_proto_errors++;
        note_error("unexpected message on a %s connection", c->role == ROLE_SENDER ? "sender" : "idle");
    }
}

static void on_close_frame(conn_t *c, int code) {
    if (c->state == C_CLOSING) {
        c->state = C_WAIT_EOF;
        c->t_state = now_ns();
        (void)code;
        return;
    }
    c_unexpected_close++;
    char why[64];
    snprintf(why, sizeof why, "server sent close frame (code %d)", code);
    conn_fail(c, why);
}

static void slot_done(conn_t *c) {
    conn_close_fd(c);
    c->state = C_FREE;
    if (measuring) c_hs_done++;
    progress();
}

static void on_eof(conn_t *c) {
    if (c->role == ROLE_SLOT && c->state == C_WAIT_EOF && phase == 1) {
        slot_done(c);
        return;
    }
    if (c->state == C_WAIT_EOF) {
        conn_close_fd(c);
        c->state = C_FREE;
        c_closed_clean++;
        return;
    }
    c_unexpected_close++;
    conn_fail(c, c->state == C_HANDSHAKE ? "server closed during handshake" : "server closed the connection");
}

/* ------------------------------------------------------------------ */
/* Handshake answer                                                    */
/* ------------------------------------------------------------------ */

/* Find header `name` in the answer; copies its trimmed value. */
static int find_header(const char *hs, const char *name, char *val, size_t cap) {
    size_t nl = strlen(name);
    const char *p = strstr(hs, "\r\n");
    while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
        const char *line = p + 2;
        const char *end = strstr(line, "\r\n");
        if (!end) return 0;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            const char *e = end;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            size_t n = (size_t)(e - v);
            if (n >= cap) n = cap - 1;
            memcpy(val, v, n);
            val[n] = 0;
            return 1;
        }
        p = end;
    }
    return 0;
}

static void feed(conn_t *c, const uint8_t *d, size_t n);

/* Copy s[0..n) without surrounding blanks into out (cap bytes). */
static void trim_copy(const char *s, size_t n, char *out, size_t cap) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* A window-bits value (8-15, maybe quoted), or -1. */
static int pmd_bits(const char *v) {
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + v[1] - '0';
    return -1;
}

/* Check the server's Sec-WebSocket-Extensions answer to our offer
 * "permessage-deflate; client_max_window_bits" (RFC 7692 7.1) and keep
 * the agreed parameters. Returns 0, or -1 with *why set. */
static int pmd_accept(conn_t *c, const char *v, const char **why) {
    if (strchr(v, ',')) return *why = "server accepted more than one extension", -1;
    const char *p = v, *semi = strchr(p, ';');
    char tok[64], name[64], val[32];
    trim_copy(p, semi ? (size_t)(semi - p) : strlen(p), tok, sizeof tok);
    if (strcasecmp(tok, "permessage-deflate") != 0)
        return *why = "server answered with an extension nobody offered", -1;
    int srv_bits = 15, cli_bits = 15, srv_nct = 0, cli_nct = 0;
    unsigned seen = 0;
    while (semi) {
        p = semi + 1;
        semi = strchr(p, ';');
        trim_copy(p, semi ? (size_t)(semi - p) : strlen(p), tok, sizeof tok);
        char *eq = strchr(tok, '=');
        int has_val = eq != NULL;
        trim_copy(tok, eq ? (size_t)(eq - tok) : strlen(tok), name, sizeof name);
        trim_copy(eq ? eq + 1 : "", eq ? strlen(eq + 1) : 0, val, sizeof val);
        unsigned bit;
        if (!strcasecmp(name, "server_no_context_takeover")) {
            bit = 1;
            if (has_val) return *why = "permessage-deflate: server_no_context_takeover with a value", -1;
            srv_nct = 1;
        } else if (!strcasecmp(name, "client_no_context_takeover")) {
            bit = 2;
            if (has_val) return *why = "permessage-deflate: client_no_context_takeover with a value", -1;
            cli_nct = 1;
        } else if (!strcasecmp(name, "server_max_window_bits")) {
            bit = 4;
            if ((srv_bits = pmd_bits(val)) < 0)
                return *why = "permessage-deflate: bad server_max_window_bits", -1;
        } else if (!strcasecmp(name, "client_max_window_bits")) {
            bit = 8;
            if ((cli_bits = pmd_bits(val)) < 0) /* the answer must carry a value (7.1.2.2) */
                return *why = "permessage-deflate: client_max_window_bits without a valid value", -1;
        } else {
            return *why = "permessage-deflate: unknown parameter in the answer", -1;
        }
        if (seen & bit) return *why = "permessage-deflate: parameter repeated in the answer", -1;
        seen |= bit;
    }
    c->pmd = 1;
    c->pmd_srv_bits = srv_bits;
    c->pmd_cli_bits = cli_bits;
    c->pmd_srv_nct = srv_nct;
    c->pmd_cli_nct = cli_nct;
    if (!pmd_answer[0]) snprintf(pmd_answer, sizeof pmd_answer, "%s", v);
    return 0;
}

/* Returns bytes of d consumed by the handshake, or -1 when it failed. */
static long handshake_feed(conn_t *c, const uint8_t *d, size_t n) {
    if (cfg.proto == P_RAW) { /* the raw "handshake" is one echoed byte */
        if (d[0] != 'x') return conn_fail(c, "raw probe byte mismatch"), -1;
        on_open(c);
        return 1;
    }
    size_t take = n;
    if (take > sizeof c->hs - 1 - c->hslen) take = sizeof c->hs - 1 - c->hslen;
    size_t old = c->hslen;
    memcpy(c->hs + c->hslen, d, take);
    c->hslen += take;
    c->hs[c->hslen] = 0;
    char *end = memmem(c->hs, c->hslen, "\r\n\r\n", 4);
    if (!end) {
        if (c->hslen >= sizeof c->hs - 1) return conn_fail(c, "handshake answer too large"), -1;
        return (long)take;
    }
    size_t hdrlen = (size_t)(end - c->hs) + 4;
    size_t need = hdrlen + (cfg.proto == P_HIXIE76 ? 16 : 0);
    if (c->hslen < need) return (long)take;
    char status[64];
    char *eol = strstr(c->hs, "\r\n");
    size_t sl = (size_t)(eol - c->hs);
    if (sl >= sizeof status) sl = sizeof status - 1;
    memcpy(status, c->hs, sl);
    status[sl] = 0;
    if (strncmp(status, "HTTP/1.1 101", 12) != 0) {
        char why[128];
        snprintf(why, sizeof why, "handshake refused: %s", status);
        return conn_fail(c, why), -1;
    }
    int md5_ok = cfg.proto == P_HIXIE76 && memcmp(c->hs + hdrlen, c->md5, 16) == 0;
    char saved = c->hs[hdrlen];
    c->hs[hdrlen] = 0; /* headers only */
    char v[256];
    int ok = 1;
    const char *why = "";
    if (!find_header(c->hs, "Upgrade", v, sizeof v) || strcasecmp(v, "websocket") != 0) {
        ok = 0;
        why = "bad Upgrade header";
    } else if (!find_header(c->hs, "Connection", v, sizeof v) || !strcasestr(v, "upgrade")) {
        ok = 0;
        why = "bad Connection header";
    } else if (cfg.proto == P_HIXIE76) {
        if (!find_header(c->hs, "Sec-WebSocket-Location", v, sizeof v)) {
            ok = 0;
            why = "no Sec-WebSocket-Location";
        } else if (!md5_ok) {
            ok = 0;
            why = "wrong Hixie-76 challenge answer";
        }
    } else {
        if (!find_header(c->hs, "Sec-WebSocket-Accept", v, sizeof v)) {
            ok = 0;
            why = "no Sec-WebSocket-Accept";
        } else if (strcmp(v, c->accept) != 0) {
            ok = 0;
            why = "wrong Sec-WebSocket-Accept";
        }
    }
    if (ok) {
        if (find_header(c->hs, "Sec-WebSocket-Extensions", v, sizeof v)) {
            if (!cfg.deflate) {
                ok = 0;
                why = "server answered with an extension nobody offered";
            } else if (pmd_accept(c, v, &why) < 0) {
                ok = 0;
            }
        } else if (cfg.deflate) {
            ok = 0;
            why = "server did not accept permessage-deflate (no Sec-WebSocket-Extensions in its answer)";
        }
    }
    c->hs[hdrlen] = saved;
    if (!ok) {
        c_proto_errors++;
        return conn_fail(c, why), -1;
    }
    /* bytes of this chunk that belong to the handshake answer */
    long used = (long)(need - old);
    on_open(c);
    return used;
}

/* ------------------------------------------------------------------ */
/* Frame parsers (server to client)                                    */
/* ------------------------------------------------------------------ */

/* The message the next echo must equal (the pattern, or with --json the
 * oldest message not echoed yet); NULL when nothing is expected. */
static const uint8_t *expected(conn_t *c, size_t *len) {
    if (!c->mq) {
        *len = cfg.size;
        return pattern;
    }
    if (!c->mq_count) {
        *len = 0;
        return NULL;
    }
    *len = c->mqlen[c->mq_head];
    return c->mq + (size_t)c->mq_head * mq_slot;
}

/* A broadcast receiver's piece of a message: the sender's sequence number
 * (hex digits), then the pattern. */
static int check_broadcast(conn_t *c, const uint8_t *d, size_t n) {
    if (c->msglen + n > cfg.size) {
        c_mismatch++;
        conn_fail(c, "message longer than sent");
        return -1;
    }
    size_t i = 0;
    for (; i < n && c->msglen + i < BC_SEQ_DIGITS; i++) {
        uint8_t b = d[i];
        int v = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : -1;
        if (v < 0) {
            c_mismatch++;
            conn_fail(c, "message does not start with the sender's sequence number");
            return -1;
        }
        c->bc_seq_in = c->bc_seq_in << 4 | (uint64_t)v;
    }
    if (i < n && memcmp(d + i, pattern + c->msglen + i, n - i) != 0) {
        c_mismatch++;
        conn_fail(c, "message content differs from what was sent");
        return -1;
    }
    c->msglen += n;
    return 0;
}

static int check_payload(conn_t *c, const uint8_t *d, size_t n) {
    if (c->role == ROLE_RECEIVER) return check_broadcast(c, d, n);
    size_t elen;
    const uint8_t *e = expected(c, &elen);
    if (!e) {
        c_mismatch++;
        conn_fail(c, "message that nobody sent");
        return -1;
    }
    if (c->msglen + n > elen) {
        c_mismatch++;
        conn_fail(c, "message longer than sent");
        return -1;
    }
    if (memcmp(d, e + c->msglen, n) != 0) {
        c_mismatch++;
        conn_fail(c, "message content differs from what was sent");
        return -1;
    }
    c->msglen += n;
    return 0;
}

static int message_end(conn_t *c) {
    size_t elen;
    if (!expected(c, &elen) || c->msglen != elen) {
        c_mismatch++;
        conn_fail(c, "message shorter than sent");
        return -1;
    }
    if (c->pmd) c_raw_in += c->msglen;
    c->msglen = 0;
    if (c->mq) {
        c->mq_head = (c->mq_head + 1) % c->mq_cap;
        c->mq_count--;
    }
    on_message(c);
    return 0;
}

/* ---- permessage-deflate: decompression (server to client) ---- */

static uint8_t ibuf[64 * 1024]; /* inflated output, checked piece by piece */

/* Inflate the next piece of a compressed message and check what comes out. */
static int pmd_inflate(conn_t *c, const uint8_t *d, size_t n) {
    if (!c->zi_on) {
        memset(&c->zi, 0, sizeof c->zi);
        /* the server's agreed window: a back-reference beyond it fails */
        if (inflateInit2(&c->zi, -c->pmd_srv_bits) != Z_OK) die("inflateInit2 failed");
        c->zi_on = 1;
    }
    c->zi.next_in = (Bytef *)d;
    c->zi.avail_in = (uInt)n;
    for (;;) {
        c->zi.next_out = ibuf;
        c->zi.avail_out = sizeof ibuf;
        int r = inflate(&c->zi, Z_SYNC_FLUSH);
        size_t got = sizeof ibuf - c->zi.avail_out;
        if (got && check_payload(c, ibuf, got) < 0) return -1;
        if (r == Z_STREAM_END) {
            /* a block with BFINAL ended the DEFLATE stream: what follows
             * (if anything) is a new one (RFC 7692 7.2.3.4) */
            inflateReset(&c->zi);
            if (!c->zi.avail_in) return 0;
            continue;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            char why[160];
            c_proto_errors++;
            snprintf(why, sizeof why, "inflate: %s", c->zi.msg ? c->zi.msg : "error");
            conn_fail(c, why);
            return -1;
        }
        if (c->zi.avail_out) return 0; /* all input used, all output taken */
    }
}

static const uint8_t deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* The last frame of a compressed message arrived: put the tail back. */
static int pmd_message_end(conn_t *c) {
    if (pmd_inflate(c, deflate_tail, 4) < 0) return -1;
    if (c->pmd_srv_nct) inflateReset(&c->zi);
    return 0;
}

static void ws_feed(conn_t *c, const uint8_t *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->state == C_DEAD || c->state == C_FREE) return;
        if (c->ps == 0) { /* header */
            while (i < n && c->hlen < c->hneed) c->hdr[c->hlen++] = d[i++];
            if (c->hlen < c->hneed) return;
            if (c->hlen == 2) {
                int len7 = c->hdr[1] & 0x7F;
                if (c->hdr[1] & 0x80) {
                    c_proto_errors++;
                    return conn_fail(c, "server frame is masked");
                }
                if (c->hdr[0] & (c->pmd ? 0x30 : 0x70)) {
                    c_proto_errors++;
                    return conn_fail(c, c->pmd ? "RSV2 or RSV3 set" : "RSV bits set without an extension");
                }
                c->hneed = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
                if (c->hlen < c->hneed) continue;
            }
            int len7 = c->hdr[1] & 0x7F;
            uint64_t len = (uint64_t)len7;
            if (len7 == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (len7 == 127) {
                len = 0;
                for (int k = 0; k < 8; k++) len = len << 8 | c->hdr[2 + k];
                if (len >> 63) {
                    c_proto_errors++;
                    return conn_fail(c, "64-bit length with the top bit set");
                }
            }
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 0x0F;
            int rsv1 = (c->hdr[0] & 0x40) != 0;
            c->remain = len;
            c->hlen = 0;
            c->hneed = 2;
            if (rsv1 && (c->opcode == 0 || c->opcode >= 8)) {
                c_proto_errors++;
                return conn_fail(c, "RSV1 on a continuation or control frame");
            }
            if (c->opcode >= 8) {
                if (len > 125 || !c->fin) {
                    c_proto_errors++;
                    return conn_fail(c, "bad control frame");
                }
                c->ctrllen = 0;
                c->ps = 2;
            } else {
                if (c->opcode == 0 ? c->msg_opcode == 0 : c->msg_opcode != 0) {
                    c_proto_errors++;
                    return conn_fail(c, "bad continuation");
                }
                if (c->opcode != 0) {
                    if (c->opcode != 1) {
                        c_proto_errors++;
                        return conn_fail(c, "echo came back as binary or unknown opcode");
                    }
                    c->msg_opcode = c->opcode;
                    c->msg_compressed = rsv1;
                    if (c->pmd) {
                        if (rsv1) c_z_in++;
                        else c_plain_in++;
                    }
                }
                c->ps = 1;
            }
            if (c->remain > 0) continue;
        }
        if (c->ps == 1) { /* data payload */
            size_t take = n - i;
            if (take > c->remain) take = (size_t)c->remain;
            if (take && (c->msg_compressed ? pmd_inflate(c, d + i, take) : check_payload(c, d + i, take)) < 0)
                return;
            if (c->pmd) c_wire_in += take;
            i += take;
            c->remain -= take;
            if (c->remain) return;
            c->ps = 0;
            if (c->fin) {
                c->msg_opcode = 0;
                if (c->msg_compressed && pmd_message_end(c) < 0) return;
                c->msg_compressed = 0;
                if (message_end(c) < 0) return;
            }
        } else if (c->ps == 2) { /* control payload */
            size_t take = n - i;
            if (take > c->remain) take = (size_t)c->remain;
            memcpy(c->ctrl + c->ctrllen, d + i, take);
            c->ctrllen += (int)take;
            i += take;
            c->remain -= take;
            if (c->remain) return;
            c->ps = 0;
            if (c->opcode == 0x9) { /* ping: answer with a pong */
                c_pings++;
                queue_ws_frame(c, 0, 0xA, c->ctrl, (size_t)c->ctrllen);
            } else if (c->opcode == 0x8) {
                int code = c->ctrllen >= 2 ? (c->ctrl[0] << 8 | c->ctrl[1]) : 1005;
                on_close_frame(c, code);
                return;
            } else if (c->opcode != 0xA) {
                c_proto_errors++;
                return conn_fail(c, "unknown control opcode");
            }
        }
    }
}

/* Hixie-76: 0x00 <utf-8> 0xFF text frames, 0xFF 0x00 closes. */
static void hixie_feed(conn_t *c, const uint8_t *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->state == C_DEAD || c->state == C_FREE) return;
        switch (c->ps) {
        case 0: { /* frame type */
            uint8_t t = d[i++];
            if (t == 0x00) c->ps = 1;
            else if (t == 0xFF) c->ps = 2;
            else if (t & 0x80) { c->ps = 3; c->hixie_lenval = 0; }
            else { c_proto_errors++; return conn_fail(c, "unknown Hixie-76 frame type"); }
            break;
        }
        case 1: { /* text until 0xFF */
            const uint8_t *e = memchr(d + i, 0xFF, n - i);
            size_t take = e ? (size_t)(e - (d + i)) : n - i;
            if (take && check_payload(c, d + i, take) < 0) return;
            i += take;
            if (e) {
                i++;
                c->ps = 0;
                if (message_end(c) < 0) return;
            }
            break;
        }
        case 2: /* 0xFF then 0x00 closes */
            if (d[i++] != 0x00) { c_proto_errors++; return conn_fail(c, "bad Hixie-76 close frame"); }
            c->ps = 0;
            on_close_frame(c, 0);
            return;
        case 3: { /* length-prefixed frame (never expected): read length, skip */
            uint8_t b = d[i++];
            c->hixie_lenval = c->hixie_lenval * 128 + (b & 0x7F);
            if (c->hixie_lenval > (1u << 30)) { c_proto_errors++; return conn_fail(c, "huge Hixie-76 frame"); }
            if (!(b & 0x80)) { c->remain = c->hixie_lenval; c->ps = c->remain ? 4 : 0; }
            c_proto_errors++; /* a server that echoes text should not send these */
            break;
        }
        case 4: {
            size_t take = n - i;
            if (take > c->remain) take = (size_t)c->remain;
            i += take;
            c->remain -= take;
            if (!c->remain) c->ps = 0;
            break;
        }
        }
    }
}

/* Raw TCP: the echoed stream is the pattern repeated, message by message. */
static void raw_feed(conn_t *c, const uint8_t *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->state == C_DEAD || c->state == C_FREE) return;
        size_t elen;
        if (!expected(c, &elen)) {
            c_mismatch++;
            return conn_fail(c, "data that nobody sent");
        }
        size_t take = n - i;
        if (take > elen - c->msglen) take = elen - c->msglen;
        if (check_payload(c, d + i, take) < 0) return;
        i += take;
        if (c->msglen == elen && message_end(c) < 0) return;
    }
}

static void feed(conn_t *c, const uint8_t *d, size_t n) {
    if (c->state == C_HANDSHAKE) {
        long used = handshake_feed(c, d, n);
        if (used < 0) return;
        d += used;
        n -= (size_t)used;
        if (c->state == C_HANDSHAKE || n == 0) return;
    }
    if (cfg.proto == P_RAW) raw_feed(c, d, n);
    else if (cfg.proto == P_HIXIE76) hixie_feed(c, d, n);
    else ws_feed(c, d, n);
}

/* ------------------------------------------------------------------ */
/* Event handling                                                      */
/* ------------------------------------------------------------------ */

static void on_connected(conn_t *c) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        c_conn_fail++;
        char why[96];
        snprintf(why, sizeof why, "connect: %s", strerror(err));
        conn_fail(c, why);
        return;
    }
    c->state = C_HANDSHAKE;
    c->t_state = now_ns();
    if (cfg.proto == P_RAW) {
        out_append(c, "x", 1);
        flush_out(c);
    } else {
        send_request(c);
    }
}

/* Read until EAGAIN, at most 64 reads; leftovers are revisited. A read
 * shorter than the buffer took everything the socket had: data arriving
 * later raises a new edge, so there is no need to pay a recv() that fails
 * with EAGAIN, unless the peer's FIN or an error came with this event
 * (`hup`), which raises no further edge. */
static void do_read(conn_t *c, int hup) {
    c->rd_pending = 0;
    for (int k = 0; k < 64; k++) {
        if (c->fd < 0 || c->state == C_DEAD || c->state == C_FREE) return;
        ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (r > 0) {
            feed(c, rbuf, (size_t)r);
            if ((size_t)r < sizeof rbuf && !hup) return;
            continue;
        }
        if (r == 0) {
            on_eof(c);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        char why[96];
        snprintf(why, sizeof why, "recv: %s", strerror(errno));
        if (c->state == C_WAIT_EOF) { /* reset instead of FIN after the close frames */
            on_eof(c);
            return;
        }
        c_unexpected_close++;
        conn_fail(c, why);
        return;
    }
    if (npending_reads < (int)(sizeof pending_reads / sizeof pending_reads[0])) {
        c->rd_pending = 1;
        pending_reads[npending_reads++] = (int)(c - conns);
    }
}

static void handle_event(conn_t *c, uint32_t ev) {
    if (c->fd < 0) return;
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        if (c->state != C_HANDSHAKE) return;
    }
    if ((ev & EPOLLOUT) && c->wblocked) flush_out(c);
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) do_read(c, (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    if (c->fd >= 0 && c->outlen > c->outoff && !c->wblocked) flush_out(c);
}

/* One turn of the event loop: wait up to timeout_ms, handle the events, then
 * the reads that were deferred (see do_read). Returns epoll_wait's result. */
static int poll_once(int timeout_ms) {
    static struct epoll_event evs[1024];
    static int tmp[65536];
    int n = epoll_wait(epfd, evs, 1024, timeout_ms);
    int wait_errno = errno;  /* for the caller, whatever the reads below do */
    for (int i = 0; i < n; i++) handle_event(&conns[evs[i].data.u32], evs[i].events);
    if (npending_reads) {
        int cnt = npending_reads;
        memcpy(tmp, pending_reads, sizeof(int) * (size_t)cnt);
        npending_reads = 0;
        for (int i = 0; i < cnt; i++) {
            conn_t *c = &conns[tmp[i]];
            if (c->rd_pending) do_read(c, 1);
            if (c->fd >= 0 && c->outlen > c->outoff && !c->wblocked) flush_out(c);
        }
    }
    errno = wait_errno;
    return n;
}

/* ------------------------------------------------------------------ */
/* Server CPU time from /proc                                          */
/* ------------------------------------------------------------------ */

static double proc_cpu_s(int pid) {
    if (pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ") " : state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ------------------------------------------------------------------ */
/* Self-test of the handshake arithmetic                               */
/* ------------------------------------------------------------------ */

/* Feed `n` compressed bytes (tail stripped) to r's inflater in pieces of
 * at most `piece` bytes; returns 0 when r received exactly `msg`. */
static int st_receive(conn_t *r, const uint8_t *z, size_t n, size_t piece, const uint8_t *msg, size_t len) {
    memcpy(r->mq, msg, len);
    r->mqlen[0] = (uint32_t)len;
    r->mq_head = 0;
    r->mq_count = 1;
    r->msglen = 0;
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        if (pmd_inflate(r, z + off, k) < 0) return -1;
    }
    if (pmd_message_end(r) < 0) return -1;
    if (r->msglen != len || r->state != C_OPEN) return -1;
    r->mq_count = 0;
    r->msglen = 0;
    return 0;
}

/* permessage-deflate: the RFC 7692 examples, the answer parser, and
 * compress/inflate round trips with every window and takeover setting. */
static int selftest_deflate(void) {
    int fails = 0;
    size_t saved_size = cfg.size;
    cfg.size = 200;
    mq_slot = json_max_len();
    nconns = 2;
    conns = calloc(2, sizeof(conn_t));
    if (!conns) die("out of memory");
    conn_t *s = &conns[0], *r = &conns[1]; /* sender (compressor), receiver (inflater) */
    r->mq_cap = 1;
    r->mq = malloc(mq_slot);
    r->mqlen = calloc(1, sizeof(uint32_t));
    if (!r->mq || !r->mqlen) die("out of memory");
    s->fd = r->fd = -1;
    r->state = C_OPEN;
    r->pmd = s->pmd = 1;

    /* RFC 7692 7.2.3.1 / 7.2.3.2: "Hello" twice, with context takeover */
    static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    static const uint8_t hello_bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}; /* 7.2.3.4 */
    static const uint8_t hello_stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}; /* 7.2.3.3 */
    const uint8_t *H = (const uint8_t *)"Hello";
    s->pmd_cli_bits = 15;
    r->pmd_srv_bits = 15;
    size_t z = pmd_compress(s, H, 5);
    if (z != sizeof hello1 || memcmp(zbuf, hello1, z)) { puts("deflate Hello FAIL"); fails++; }
    z = pmd_compress(s, H, 5);
    if (z != sizeof hello2 || memcmp(zbuf, hello2, z)) { puts("deflate Hello with takeover FAIL"); fails++; }
    if (st_receive(r, hello1, sizeof hello1, 64, H, 5) || st_receive(r, hello2, sizeof hello2, 1, H, 5) ||
        st_receive(r, hello_bfinal, sizeof hello_bfinal, 64, H, 5) ||
        st_receive(r, hello_stored, sizeof hello_stored, 3, H, 5)) {
        printf("inflate RFC 7692 examples FAIL (%s)\n", first_error);
        fails++;
    }
    pmd_free(s);
    pmd_free(r);

    /* the answer to our offer */
    static const struct { const char *answer; int ok, srv, cli, snct, cnct; } answers[] = {
        {"permessage-deflate", 1, 15, 15, 0, 0},
        {"permessage-deflate; server_max_window_bits=12", 1, 12, 15, 0, 0},
        {"permessage-deflate;client_max_window_bits=\"10\" ; server_no_context_takeover", 1, 15, 10, 1, 0},
        {"permessage-deflate; client_no_context_takeover; server_max_window_bits=8", 1, 8, 15, 0, 1},
        {"permessage-deflate; client_max_window_bits", 0, 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=16", 0, 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=012", 0, 0, 0, 0, 0},
        {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, 0, 0, 0, 0},
        {"permessage-deflate; server_no_context_takeover=1", 0, 0, 0, 0, 0},
        {"permessage-deflate; x-unknown", 0, 0, 0, 0, 0},
        {"permessage-deflate, permessage-deflate", 0, 0, 0, 0, 0},
        {"x-webkit-deflate-frame", 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        conn_t t;
        memset(&t, 0, sizeof t);
        const char *why = "";
        int ok = pmd_accept(&t, answers[i].answer, &why) == 0;
        if (ok != answers[i].ok || (ok && (t.pmd_srv_bits != answers[i].srv || t.pmd_cli_bits != answers[i].cli ||
                                           t.pmd_srv_nct != answers[i].snct || t.pmd_cli_nct != answers[i].cnct))) {
            printf("permessage-deflate answer FAIL: %s\n", answers[i].answer);
            fails++;
        }
    }
    pmd_answer[0] = 0;

    /* round trips: JSON messages, every window size, with and without takeover */
    static const int bits[] = {8, 9, 12, 15};
    uint8_t *msg = malloc(mq_slot), *copy = NULL;
    if (!msg) die("out of memory");
    for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
        for (int nct = 0; nct < 2; nct++) {
            s->pmd_cli_bits = r->pmd_srv_bits = bits[b];
            s->pmd_cli_nct = r->pmd_srv_nct = nct;
            r->state = C_OPEN;
            size_t raw = 0, wire = 0;
            for (int m = 0; m < 200; m++) {
                size_t len = make_json(s, msg);
                size_t zl = pmd_compress(s, msg, len);
                copy = realloc(copy, zl + 1);
                if (!copy) die("out of memory");
                memcpy(copy, zbuf, zl);
                raw += len;
                wire += zl;
                if (st_receive(r, copy, zl, m % 2 ? 1 : 4096, msg, len)) {
                    printf("deflate round trip FAIL: window %d, no_context_takeover %d, message %d (%s)\n",
                           bits[b], nct, m, first_error);
                    fails++;
                    break;
                }
            }
            /* with takeover, later messages reuse earlier ones: smaller */
            if (!nct && bits[b] >= 12 && wire * 2 > raw) {
                printf("deflate ratio FAIL: window %d: %zu -> %zu bytes\n", bits[b], raw, wire);
                fails++;
            }
            pmd_free(s);
            pmd_free(r);
        }
    }
    /* a corrupt message is caught */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x00};
    r->pmd_srv_bits = 15;
    if (st_receive(r, junk, sizeof junk, 64, H, 5) == 0) { puts("inflate of junk FAIL"); fails++; }
    free(msg);
    free(copy);
    pmd_free(s);
    pmd_free(r);
    free(r->mq);
    free(r->mqlen);
    free(conns);
    conns = NULL;
    nconns = 0;
    cfg.size = saved_size;
    c_errors = c_proto_errors = c_mismatch = 0;
    first_error[0] = 0;
    return fails;
}

static int selftest(void) {
    int fails = 0;
    uint8_t d[20];
    char hex[41], b[64];
    sha1((const uint8_t *)"abc", 3, d);
    for (int i = 0; i < 20; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    if (strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d")) { puts("sha1 abc FAIL"); fails++; }
    const char *l = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1((const uint8_t *)l, strlen(l), d);
    for (int i = 0; i < 20; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    if (strcmp(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1")) { puts("sha1 448-bit FAIL"); fails++; }
    md5((const uint8_t *)"", 0, d);
    for (int i = 0; i < 16; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    if (strcmp(hex, "d41d8cd98f00b204e9800998ecf8427e")) { puts("md5 empty FAIL"); fails++; }
    const char *q = "The quick brown fox jumps over the lazy dog";
    md5((const uint8_t *)q, strlen(q), d);
    for (int i = 0; i < 16; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    if (strcmp(hex, "9e107d9d372bb6826bd81d3542a419d6")) { puts("md5 fox FAIL"); fails++; }
    /* RFC 6455 section 1.3 */
    accept_key("dGhlIHNhbXBsZSBub25jZQ==", b);
    if (strcmp(b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) { printf("accept FAIL %s\n", b); fails++; }
    /* draft-hixie-thewebsocketprotocol-76 section 1.3 */
    uint32_t n1, n2;
    uint8_t ans[16];
    if (hixie_key_number("4 @1  46546xW%0l 1 5", &n1) || n1 != 829309203) { puts("hixie key1 FAIL"); fails++; }
    if (hixie_key_number("12998 5 Y3 1  .P00", &n2) || n2 != 259970620) { puts("hixie key2 FAIL"); fails++; }
    hixie_answer(n1, n2, (const uint8_t *)"^n:ds[4U", ans);
    if (memcmp(ans, "8jKS'y:G*Co,Wxa-", 16)) { puts("hixie answer FAIL"); fails++; }
    /* our own keys decode to the number they were made from */
    for (int i = 0; i < 10000; i++) {
        char k[96];
        uint32_t num = hixie_make_key(k, sizeof k), back;
        if (hixie_key_number(k, &back) || back != num || k[0] == ' ' || k[strlen(k) - 1] == ' ') {
            printf("hixie make_key FAIL: %s\n", k);
            fails++;
            break;
        }
    }
    /* masking round trip */
    uint8_t src[37], dst[37], back[37], m[4] = {1, 2, 3, 250};
    for (int i = 0; i < 37; i++) src[i] = (uint8_t)i;
    mask_copy(dst, src, 37, m);
    mask_copy(back, dst, 37, m);
    if (memcmp(src, back, 37) || dst[5] != (5 ^ 2)) { puts("mask FAIL"); fails++; }
    fails += selftest_deflate();
    printf("selftest: %s (zlib %s)\n", fails ? "FAIL" : "ok", zlibVersion());
    return fails ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static void on_signal(int s) {
    (void)s;
    stop_flag = 1;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--proto rfc6455|hybi08|hixie76|raw]\n"
            "  [--scenario echo|latency|broadcast|handshakes|idle|probe]\n"
            "  [--conns N] [--inflight K] [--size BYTES] [--warmup S] [--duration S]\n"
            "  [--receivers R] [--window W] [--max-pending N] [--server-pid PID]\n"
            "  [--setup-timeout S] [--stall-timeout S] [--path /p] [--deflate] [--json]\n"
            "  | --selftest\n"
            "--deflate: permessage-deflate (rfc6455/hybi08), the run fails unless the server\n"
            "  accepts it; with --scenario idle each connection first echoes one message.\n"
            "--json: varied chat-like JSON messages of about --size bytes (echo, latency, idle).\n");
    exit(2);
}

static int lookup(const char *v, const char **names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"proto", 1, 0, 'p'},       {"scenario", 1, 0, 's'},   {"port", 1, 0, 'P'},
        {"conns", 1, 0, 'c'},       {"inflight", 1, 0, 'k'},   {"size", 1, 0, 'S'},
        {"warmup", 1, 0, 'w'},      {"duration", 1, 0, 'd'},   {"receivers", 1, 0, 'r'},
        {"window", 1, 0, 'W'},      {"max-pending", 1, 0, 'm'}, {"server-pid", 1, 0, 'i'},
        {"setup-timeout", 1, 0, 'T'}, {"stall-timeout", 1, 0, 'L'}, {"path", 1, 0, 'a'}, {"close-timeout", 1, 0, 'C'},
        {"selftest", 0, 0, 'X'}, {"busy-poll", 0, 0, 'B'},    {"help", 0, 0, 'h'},
        {"deflate", 0, 0, 'Z'},  {"json", 0, 0, 'J'},          {0, 0, 0, 0}};
    int o;
    rng_state ^= now_ns() ^ ((uint64_t)getpid() << 32);
    if (!rng_state) rng_state = 1;
    for (int i = 0; i < 4; i++) rng64();
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': cfg.proto = lookup(optarg, proto_names, 4); if (cfg.proto < 0) usage(); break;
        case 's': cfg.scenario = lookup(optarg, scen_names, 6); if (cfg.scenario < 0) usage(); break;
        case 'P': cfg.port = atoi(optarg); break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 'k': cfg.inflight = atoi(optarg); break;
        case 'S': cfg.size = (size_t)atol(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'r': cfg.receivers = atoi(optarg); break;
        case 'W': cfg.window = atoi(optarg); break;
        case 'm': cfg.max_pending = atoi(optarg); break;
        case 'i': cfg.server_pid = atoi(optarg); break;
        case 'T': cfg.setup_timeout = atof(optarg); break;
        case 'L': cfg.stall_timeout = atof(optarg); break;
        case 'a': cfg.path = optarg; break;
        case 'C': cfg.close_timeout = atof(optarg); break;
        case 'X': return selftest();
        case 'B': busy_poll = 1; break;
        case 'Z': cfg.deflate = 1; break;
        case 'J': cfg.json = 1; break;
        default: usage();
        }
    }
    if (cfg.port <= 0 || cfg.port > 65535) usage();
    if (cfg.scenario == S_LATENCY) { cfg.conns = 1; cfg.inflight = 1; }
    if (cfg.scenario == S_PROBE) cfg.conns = 1;
    if (cfg.scenario == S_BROADCAST) cfg.conns = cfg.receivers + 1;
    if (cfg.conns < 1 || cfg.conns > 60000 || cfg.inflight < 1 || cfg.inflight > 100000 || cfg.size < 1 ||
        cfg.size > (64u << 20) || cfg.duration <= 0 || cfg.duration > 600 || cfg.warmup < 0 ||
        cfg.warmup > 600 || cfg.window < 1 || cfg.max_pending < 1 || cfg.setup_timeout > 600)
        usage();
    if (cfg.proto == P_RAW && (cfg.scenario == S_BROADCAST || cfg.scenario == S_HANDSHAKES))
        die("raw TCP has no broadcast or handshake scenario");
    if (cfg.proto == P_HIXIE76 && cfg.scenario == S_HANDSHAKES)
        die("the handshake scenario speaks RFC 6455 or HyBi-08");
    if (cfg.deflate && cfg.proto != P_RFC6455 && cfg.proto != P_HYBI08)
        die("--deflate needs --proto rfc6455 or hybi08");
    if (cfg.scenario == S_BROADCAST && cfg.size < BC_SEQ_DIGITS)
        die("broadcast messages carry a %d-digit sequence number: --size must be at least that", BC_SEQ_DIGITS);
    if (cfg.scenario == S_BROADCAST && (cfg.receivers < 1 || cfg.receivers > 59999)) usage();
    if (cfg.json && cfg.scenario != S_ECHO && cfg.scenario != S_LATENCY && cfg.scenario != S_IDLE)
        die("--json is for the echo, latency and idle scenarios");

    /* Absolute bound on the whole run, whatever happens. */
    alarm((unsigned)(cfg.setup_timeout + cfg.warmup + cfg.duration + cfg.close_timeout + 30));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)cfg.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)cfg.conns + 64) die("RLIMIT_NOFILE %lu too low", (unsigned long)rl.rlim_cur);
    }

    pattern_len = cfg.size;
    pattern = malloc(pattern_len);
    if (!pattern) die("out of memory");
    for (size_t i = 0; i < pattern_len; i++) pattern[i] = (uint8_t)('a' + (i * 7 + i / 26) % 26);

    nconns = cfg.conns;
    conns = calloc((size_t)nconns, sizeof(conn_t));
    if (!conns) die("out of memory");
    int echo = cfg.scenario == S_ECHO || cfg.scenario == S_LATENCY;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->fd = -1;
        c->state = C_FREE;
        c->role = echo ? ROLE_ECHO
                  : cfg.scenario == S_BROADCAST ? (i == nconns - 1 ? ROLE_SENDER : ROLE_RECEIVER)
                  : cfg.scenario == S_HANDSHAKES ? ROLE_SLOT
                                                 : ROLE_IDLE;
        if (echo) {
            c->ts = calloc((size_t)cfg.inflight, sizeof(uint64_t));
            if (!c->ts) die("out of memory");
        }
        if (cfg.json && (echo || cfg.scenario == S_IDLE)) {
            c->mq_cap = echo ? cfg.inflight : 1;
            mq_slot = json_max_len();
            c->mq = malloc((size_t)c->mq_cap * mq_slot);
            c->mqlen = calloc((size_t)c->mq_cap, sizeof(uint32_t));
            if (!c->mq || !c->mqlen) die("out of memory");
        }
    }
    if (cfg.scenario == S_BROADCAST) {
        bc_sent_t = calloc(BC_RING, sizeof(uint64_t));
        bc_msg = malloc(cfg.size);
        if (!bc_sent_t || !bc_msg) die("out of memory");
        memcpy(bc_msg, pattern, cfg.size);
    }
    if (echo || cfg.scenario == S_BROADCAST) {
        samples = malloc(sizeof(uint32_t) * (size_t)cfg.max_samples);
        if (!samples) die("out of memory");
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));

    uint64_t t0 = now_ns();
    uint64_t setup_deadline = t0 + (uint64_t)(cfg.setup_timeout * 1e9);
    uint64_t run_deadline = 0;
    int next_to_open = 0;
    /* Handshake slots and echo/idle connections are opened with at most
     * max_pending in progress; broadcast opens receivers first, the sender last. */
    double self_cpu0 = 0, srv_cpu0 = 0, self_cpu1 = 0, srv_cpu1 = 0;
    uint64_t m_msgs0 = 0, m_deliv0 = 0;
    uint64_t last_check = t0;
    int ready_printed = 0;
    const char *end_reason = "duration";
    uint64_t probe_next = 0;
    int probes = 0;
    uint64_t settle_until = 0;

    progress();
    while (phase != 2) {
        uint64_t t = now_ns();
        if (stop_flag) { end_reason = "signal"; break; }

        /* ---- setup: open connections ---- */
        if (phase == 0) {
            int in_progress = 0, open = 0;
            for (int i = 0; i < next_to_open; i++) {
                int s = conns[i].state;
                if (s == C_CONNECTING || s == C_HANDSHAKE || (s == C_OPEN && !conns[i].ready)) in_progress++;
                else if (s == C_OPEN || s == C_CLOSING || s == C_WAIT_EOF) open++;
            }
            int limit = cfg.scenario == S_HANDSHAKES ? nconns : cfg.max_pending;
            while (next_to_open < nconns && in_progress < limit) {
                /* broadcast: the sender connects after every receiver is open */
                if (cfg.scenario == S_BROADCAST && next_to_open == nconns - 1 && open < nconns - 1) break;
                conn_open(&conns[next_to_open++]);
                in_progress++;
            }
            int dead = 0;
            for (int i = 0; i < nconns; i++) dead += conns[i].state == C_DEAD;
            if (dead && cfg.scenario != S_HANDSHAKES) {
                end_reason = "setup failed";
                break;
            }
            if (cfg.scenario == S_HANDSHAKES) {
                /* slots start right away: the run begins when they are all launched */
                if (next_to_open == nconns) open = nconns;
            }
            if (open == nconns && next_to_open == nconns) {
                if (cfg.scenario == S_PROBE) { end_reason = "probe ok"; break; }
                if (cfg.scenario == S_IDLE) {
                    if (!ready_printed) {
                        printf("READY %d\n", nconns);
                        fflush(stdout);
                        ready_printed = 1;
                    }
                    phase = 1;
                    t_run_start = t;
                    run_deadline = t + (uint64_t)(cfg.duration * 1e9);
                } else if (cfg.scenario == S_BROADCAST && !broadcast_probe_done) {
                    /* make sure the server registered every receiver */
                    if (t >= probe_next) {
                        if (probes >= 40) { end_reason = "receivers never all got a probe message"; break; }
                        conn_t *s = &conns[nconns - 1];
                        queue_message(s);
                        flush_out(s);
                        probes++;
                        probe_next = t + 250000000ull;
                    }
                    if (receivers_seen == cfg.receivers) {
                        if (!settle_until) settle_until = t + 300000000ull;
                        if (t >= settle_until) broadcast_probe_done = 1;
                    }
                } else {
                    phase = 1;
                    t_run_start = t;
                    run_deadline = t + (uint64_t)((cfg.warmup + cfg.duration) * 1e9);
                    t_measure_start = t + (uint64_t)(cfg.warmup * 1e9);
                    progress();
                    if (echo)
                        for (int i = 0; i < nconns; i++) start_echo_load(&conns[i]);
                    if (cfg.scenario == S_BROADCAST) {
                        bc_base_sent = c_sent_msgs;
                        bc_base_deliv = c_deliveries;
                        bc_last_deliv_t = t;
                    }
                }
            }
            if (phase == 0 && t > setup_deadline) { end_reason = "setup timeout"; break; }
        }

        /* ---- run ---- */
        if (phase == 1) {
            if (t >= run_deadline) { end_reason = "duration"; break; }
            if (!measuring && cfg.scenario != S_IDLE && t >= t_measure_start) {
                measuring = 1;
                t_measure_start = t;
                self_cpu0 = cpu_self_s();
                srv_cpu0 = proc_cpu_s(cfg.server_pid);
                m_msgs0 = c_msgs;
                m_deliv0 = c_deliveries;
            }
            if (cfg.scenario == S_BROADCAST) {
                conn_t *s = &conns[nconns - 1];
                if (s->state == C_OPEN) {
                    uint64_t R = (uint64_t)cfg.receivers;
                    int queued = 0;
                    while ((int64_t)((c_sent_msgs - bc_base_sent) * R) - (int64_t)(c_deliveries - bc_base_deliv) <
                               (int64_t)((uint64_t)cfg.window * R) && queued < cfg.window) {
                        queue_message(s);
                        queued++;
                    }
                    if (queued && !s->wblocked) flush_out(s);
                    if (AGE(t, bc_last_deliv_t) > (uint64_t)(cfg.stall_timeout * 1e9)) {
                        /* deliveries stopped: count a stall and reopen the window */
                        c_stalls++;
                        note_error("broadcast: no delivery for %.1f s", cfg.stall_timeout);
                        bc_base_sent = c_sent_msgs;
                        bc_base_deliv = c_deliveries;
                        bc_last_deliv_t = t;
                    }
                } else {
                    end_reason = "sender connection lost";
                    break;
                }
            }
            if (cfg.scenario != S_IDLE && AGE(t, t_last_progress) > (uint64_t)(cfg.stall_timeout * 1e9)) {
                c_stalls++;
                note_error("no progress for %.1f s", cfg.stall_timeout);
                end_reason = "stalled";
                break;
            }
        }

        /* ---- per-connection timeouts, every 100 ms ---- */
        if (AGE(t, last_check) > 100000000ull) {
            last_check = t;
            uint64_t lim = (uint64_t)(cfg.conn_timeout * 1e9);
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                int s = c->state;
                if ((s == C_CONNECTING || s == C_HANDSHAKE || s == C_CLOSING || s == C_WAIT_EOF) &&
                    AGE(t, c->t_state) > lim) {
                    c_timeouts++;
                    if (s == C_WAIT_EOF) c_no_server_close++;
                    conn_fail(c, s == C_CONNECTING ? "connect timeout"
                                 : s == C_HANDSHAKE ? "handshake timeout"
                                 : s == C_CLOSING ? "no close frame from the server"
                                                  : "server did not close TCP after the close handshake");
                }
            }
            if (cfg.scenario == S_ECHO || cfg.scenario == S_LATENCY || cfg.scenario == S_IDLE) {
                int dead = 0;
                for (int i = 0; i < nconns; i++) dead += conns[i].state == C_DEAD;
                if (phase == 1 && dead == nconns) { end_reason = "all connections lost"; break; }
            }
        }

        /* handshake slots that finished or failed start over */
        if (cfg.scenario == S_HANDSHAKES && phase == 1)
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == C_FREE) conn_open(&conns[i]);

        int timeout = (npending_reads || busy_poll) ? 0 : 5;
        if (poll_once(timeout) < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    }
    uint64_t t_end = now_ns();
    if (measuring) {
        self_cpu1 = cpu_self_s();
        srv_cpu1 = proc_cpu_s(cfg.server_pid);
    }
    t_measure_end = t_end;
    double window_s = measuring ? (double)(t_measure_end - t_measure_start) / 1e9 : 0;
    int open_now = 0;
    for (int i = 0; i < nconns; i++) {
        int s = conns[i].state;
        open_now += s == C_OPEN || (cfg.scenario == S_HANDSHAKES && s != C_DEAD);
    }

    /* Close politely (bounded): in-flight echoes drain, then the closing
     * handshake; connections still connecting finish and close at once. */
    int was_measuring = measuring;
    phase = 2;
    measuring = 0;
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == C_OPEN && !(conns[i].role == ROLE_ECHO && conns[i].inflight > 0))
            start_close(&conns[i]);
    uint64_t close_deadline = now_ns() + (uint64_t)(cfg.close_timeout * 1e9);
    uint64_t close_t0 = now_ns();
    for (int iter = 0; iter < 10000000; iter++) {
        int busy = 0;
        for (int i = 0; i < nconns; i++) {
            int s = conns[i].state;
            busy += s == C_CONNECTING || s == C_HANDSHAKE || s == C_OPEN || s == C_CLOSING || s == C_WAIT_EOF;
        }
        if (!busy || now_ns() >= close_deadline) break;
        if (poll_once(npending_reads ? 0 : 5) < 0 && errno != EINTR) break;
    }
    uint64_t c_close_timeouts = 0;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->fd >= 0) {
            if (c->state != C_DEAD && c->state != C_FREE) c_close_timeouts++;
            conn_abort(c);
        }
    }
    double close_s = (double)(now_ns() - close_t0) / 1e9;

    int ok = !strcmp(end_reason, "duration") || !strcmp(end_reason, "probe ok") ||
             (cfg.scenario == S_IDLE && !strcmp(end_reason, "signal"));
    if (cfg.scenario == S_IDLE && !ready_printed) ok = 0;
    if (c_bc_gaps) ok = 0; /* a receiver missed a message: the delivery count is wrong */
    double count = 0;
    const char *unit = "";
    switch (cfg.scenario) {
    case S_ECHO: case S_LATENCY: count = (double)(c_msgs - m_msgs0); unit = "rt/s"; break;
    case S_BROADCAST: count = (double)(c_deliveries - m_deliv0); unit = "deliveries/s"; break;
    case S_HANDSHAKES: count = (double)c_hs_done; unit = "handshakes/s"; break;
    default: break;
    }
    double rate = window_s > 0 ? count / window_s : 0;
    printf("{\"ok\": %s, \"end\": \"%s\", \"scenario\": \"%s\", \"proto\": \"%s\", \"conns\": %d, "
           "\"inflight\": %d, \"size\": %zu, \"window_s\": %.3f, \"count\": %.0f, \"rate\": %.1f, "
           "\"unit\": \"%s\", \"opened\": %llu, \"open_at_end\": %d, \"errors\": %llu, "
           "\"proto_errors\": %llu, \"mismatches\": %llu, \"unexpected_closes\": %llu, "
           "\"timeouts\": %llu, \"connect_failures\": %llu, \"no_server_close\": %llu, "
           "\"stalls\": %llu, \"pings\": %llu, \"closed_clean\": %llu, \"close_problems\": %llu, "
           "\"close_timeouts\": %llu, \"close_s\": %.3f, \"setup_s\": %.3f, \"probes\": %d",
           ok ? "true" : "false", end_reason, scen_names[cfg.scenario], proto_names[cfg.proto], nconns,
           cfg.inflight, cfg.size, window_s, count, rate, unit, (unsigned long long)c_opened, open_now,
           (unsigned long long)c_errors, (unsigned long long)c_proto_errors,
           (unsigned long long)c_mismatch, (unsigned long long)c_unexpected_close,
           (unsigned long long)c_timeouts, (unsigned long long)c_conn_fail,
           (unsigned long long)c_no_server_close, (unsigned long long)c_stalls,
           (unsigned long long)c_pings, (unsigned long long)c_closed_clean,
           (unsigned long long)c_close_problems, (unsigned long long)c_close_timeouts, close_s,
           t_run_start ? (double)(t_run_start - t0) / 1e9 : -1.0, probes);
    if (cfg.scenario == S_BROADCAST)
        printf(", \"receivers\": %d, \"window\": %d, \"sent\": %llu, \"order_errors\": %llu, \"unsampled\": %llu",
               cfg.receivers, cfg.window, (unsigned long long)bc_next_seq, (unsigned long long)c_bc_gaps,
               (unsigned long long)c_bc_unsampled);
    if (cfg.json && c_sent_msgs)
        printf(", \"json\": true, \"avg_msg_bytes\": %.1f",
               (double)c_msg_bytes_out / (double)c_sent_msgs);
    if (cfg.deflate) {
        printf(", \"deflate\": true, \"deflate_answer\": \"");
        for (const char *p = pmd_answer; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar((unsigned char)*p >= 0x20 ? *p : '?');
        }
        printf("\", \"compressed_out\": %llu, \"compressed_in\": %llu, \"uncompressed_in\": %llu",
               (unsigned long long)c_z_out, (unsigned long long)c_z_in, (unsigned long long)c_plain_in);
        if (c_raw_out) printf(", \"wire_ratio_out\": %.3f", (double)c_wire_out / (double)c_raw_out);
        if (c_raw_in) printf(", \"wire_ratio_in\": %.3f", (double)c_wire_in / (double)c_raw_in);
    }
    if (was_measuring && window_s > 0) {
        printf(", \"loadgen_cpu\": %.3f", (self_cpu1 - self_cpu0) / window_s);
        if (srv_cpu0 >= 0 && srv_cpu1 >= 0) printf(", \"server_cpu\": %.3f", (srv_cpu1 - srv_cpu0) / window_s);
    }
    if (samples && nsamples) {
        qsort(samples, nsamples, sizeof(uint32_t), cmp_u32);
        double sum = 0;
        for (size_t i = 0; i < nsamples; i++) sum += samples[i];
        printf(", \"samples\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
               "\"max_us\": %.1f, \"mean_us\": %.1f",
               nsamples, samples[nsamples / 2] / 1e3, samples[(size_t)(nsamples * 0.90)] / 1e3,
               samples[(size_t)(nsamples * 0.99)] / 1e3, samples[(size_t)(nsamples * 0.999)] / 1e3,
               samples[nsamples - 1] / 1e3, sum / (double)nsamples / 1e3);
    }
    if (first_error[0]) {
        printf(", \"first_error\": \"");
        for (const char *p = first_error; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar((unsigned char)*p >= 0x20 ? *p : '?');
        }
        putchar('"');
    }
    if (close_problem[0]) {
        printf(", \"first_close_problem\": \"");
        for (const char *p = close_problem; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar((unsigned char)*p >= 0x20 ? *p : '?');
        }
        putchar('"');
    }
    printf("}\n");
    fflush(stdout);
    return ok ? 0 : 1;
}
