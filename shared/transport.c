#include "shared/transport.h"

#include <errno.h>
#include <limits.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_transport {
    int sock;
    int is_req;
    int raw; /* REQ side: AF_SP_RAW */
    int sndto;
    char url[SL_TRANSPORT_URL_MAX];
};

int sl_transport_url(const char *addr, char url[SL_TRANSPORT_URL_MAX], sl_err *err)
{
    if (!addr || !*addr)
        return sl_err_set(err, SL_EINVAL, "address is empty (expected HOST:PORT)");
    const char *a = strncmp(addr, "tcp://", 6) == 0 ? addr + 6 : addr;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a)
        return sl_err_set(err, SL_EINVAL, "address '%.100s': expected HOST:PORT", addr);
    size_t hlen = (size_t)(colon - a);
    int v6 = a[0] == '[';
    if (v6 && (hlen < 3 || a[hlen - 1] != ']'))
        return sl_err_set(err, SL_EINVAL, "address '%.100s': unbalanced [ ] around IPv6 host",
                          addr);
    for (size_t i = v6; i < hlen - (size_t)v6; i++) {
        char c = a[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '*' || (v6 && c == ':');
        if (!ok)
            return sl_err_set(err, SL_EINVAL, "address '%.100s': invalid character in host",
                              addr);
    }
    const char *p = colon + 1;
    char *end = NULL;
    errno = 0;
    long port = strtol(p, &end, 10);
    if (!*p || *end || errno || port < 1 || port > 65535)
        return sl_err_set(err, SL_EINVAL, "address '%.100s': port must be 1..65535", addr);
    int n = snprintf(url, SL_TRANSPORT_URL_MAX, "tcp://%.*s:%ld", (int)hlen, a, port);
    if (n < 0 || n >= SL_TRANSPORT_URL_MAX)
        return sl_err_set(err, SL_ELIMIT, "address '%.100s' is too long", addr);
    return 0;
}

static int set_int(int s, int level, int opt, int v)
{
    return nn_setsockopt(s, level, opt, &v, sizeof v);
}

static int open_socket(const char *addr, const sl_transport_opts *o, int is_req,
                       sl_transport **out, sl_err *err)
{
    sl_transport *t = calloc(1, sizeof *t);
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "transport: out of memory");
    int rc = sl_transport_url(addr, t->url, err);
    if (rc) {
        free(t);
        return rc;
    }
    t->is_req = is_req;
    t->raw = is_req && o && o->raw;
    t->sock = nn_socket(is_req && !t->raw ? AF_SP : AF_SP_RAW, is_req ? NN_REQ : NN_REP);
    if (t->sock < 0) {
        rc = sl_err_set(err, SL_EIO, "%s: nn_socket: %s", t->url, nn_strerror(nn_errno()));
        free(t);
        return rc;
    }
    size_t maxmsg = o && o->max_msg ? o->max_msg : (size_t)1 << 20;
    int sndto = o && o->send_timeout_ms ? o->send_timeout_ms : SL_TRANSPORT_DEFAULT_SEND_TIMEOUT_MS;
    int resend = o && o->resend_ivl_ms ? o->resend_ivl_ms : SL_TRANSPORT_DEFAULT_RESEND_MS;
    t->sndto = sndto;
    const char *what = NULL;
    if (maxmsg > INT_MAX)
        what = "NN_RCVMAXSIZE (too large)";
    else if (set_int(t->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, (int)maxmsg))
        what = "NN_RCVMAXSIZE";
    else if (set_int(t->sock, NN_SOL_SOCKET, NN_SNDTIMEO, sndto))
        what = "NN_SNDTIMEO";
    else if (set_int(t->sock, NN_SOL_SOCKET, NN_LINGER, 1000))
        what = "NN_LINGER";
    /* NN_IPV4ONLY=0 on an IPv4 connect trips an assertion in nanomsg 1.1.5
     * (usock_posix.inc:195) when the connection starts; only IPv6
     * addresses turn it off. */
    else if (strncmp(t->url, "tcp://[", 7) == 0 && set_int(t->sock, NN_SOL_SOCKET, NN_IPV4ONLY, 0))
        what = "NN_IPV4ONLY";
    else if (set_int(t->sock, NN_TCP, NN_TCP_NODELAY, 1))
        what = "NN_TCP_NODELAY";
    else if (is_req && !t->raw && set_int(t->sock, NN_REQ, NN_REQ_RESEND_IVL, resend))
        what = "NN_REQ_RESEND_IVL";
    else if (o && o->sockbuf_bytes > 0 &&
             (set_int(t->sock, NN_SOL_SOCKET, NN_SNDBUF, o->sockbuf_bytes) ||
              set_int(t->sock, NN_SOL_SOCKET, NN_RCVBUF, o->sockbuf_bytes)))
        what = "NN_SNDBUF/NN_RCVBUF";
    else if (o && o->sndbuf_bytes > 0 && set_int(t->sock, NN_SOL_SOCKET, NN_SNDBUF, o->sndbuf_bytes))
        what = "NN_SNDBUF";
    if (what) {
        rc = sl_err_set(err, SL_EIO, "%s: setting %s: %s", t->url, what, nn_strerror(nn_errno()));
        goto fail;
    }
    if ((is_req ? nn_connect(t->sock, t->url) : nn_bind(t->sock, t->url)) < 0) {
        int e = nn_errno();
        rc = sl_err_set(err, SL_EIO, "%s: cannot %s: %s%s", t->url, is_req ? "connect" : "listen",
                        nn_strerror(e),
                        e == EADDRINUSE ? " (another process holds the port)" : "");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    nn_close(t->sock);
    free(t);
    return rc;
}

int sl_transport_listen(const char *addr, const sl_transport_opts *o, sl_transport **out,
                        sl_err *err)
{
    return open_socket(addr, o, 0, out, err);
}

int sl_transport_connect(const char *addr, const sl_transport_opts *o, sl_transport **out,
                         sl_err *err)
{
    return open_socket(addr, o, 1, out, err);
}

int sl_transport_recv(sl_transport *t, int timeout_ms, sl_transport_msg *m, sl_err *err)
{
    m->data = NULL;
    m->len = 0;
    m->route_len = 0;
    if (set_int(t->sock, NN_SOL_SOCKET, NN_RCVTIMEO, timeout_ms))
        return sl_err_set(err, SL_EIO, "%s: setting NN_RCVTIMEO: %s", t->url,
                          nn_strerror(nn_errno()));
    void *buf = NULL, *ctrl = NULL;
    struct nn_iovec iov = {.iov_base = &buf, .iov_len = NN_MSG};
    struct nn_msghdr h = {.msg_iov = &iov, .msg_iovlen = 1};
    if (!t->is_req || t->raw) {
        h.msg_control = &ctrl;
        h.msg_controllen = NN_MSG;
    }
    int n = nn_recvmsg(t->sock, &h, 0);
    if (n < 0) {
        int e = nn_errno();
        if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
            return 0;
        return sl_err_set(err, SL_EIO, "%s: receive: %s", t->url, nn_strerror(e));
    }
    if (ctrl) {
        for (struct nn_cmsghdr *c = NN_CMSG_FIRSTHDR(&h); c; c = NN_CMSG_NXTHDR(&h, c)) {
            size_t hdr = NN_CMSG_LEN(0);
            if (c->cmsg_level != PROTO_SP || c->cmsg_type != SP_HDR || c->cmsg_len < hdr)
                continue;
            size_t len = c->cmsg_len - hdr;
            if (len > sizeof m->route) { /* a device chain deeper than we route */
                nn_freemsg(ctrl);
                nn_freemsg(buf);
                return 0;
            }
            memcpy(m->route, NN_CMSG_DATA(c), len);
            m->route_len = len;
        }
        nn_freemsg(ctrl);
    }
    m->data = buf;
    m->len = (size_t)n;
    return 0;
}

void sl_transport_msg_free(sl_transport_msg *m)
{
    if (m && m->data)
        nn_freemsg(m->data);
    if (m) {
        m->data = NULL;
        m->len = 0;
    }
}

int sl_transport_send(sl_transport *t, const void *buf, size_t n, sl_err *err)
{
    if (nn_send(t->sock, buf, n, 0) < 0)
        return sl_err_set(err, SL_EIO, "%s: send of %zu bytes: %s", t->url, n,
                          nn_strerror(nn_errno()));
    return 0;
}

int sl_transport_reply(sl_transport *t, const sl_transport_msg *to, const void *buf, size_t n,
                       sl_err *err)
{
    if (t->is_req)
        return sl_transport_send(t, buf, n, err);
    /* One SP_HDR control message carrying the route back. */
    size_t space = NN_CMSG_SPACE(SL_TRANSPORT_ROUTE_MAX);
    _Alignas(max_align_t) uint8_t ctl[NN_CMSG_SPACE(SL_TRANSPORT_ROUTE_MAX)];
    memset(ctl, 0, space);
    struct nn_cmsghdr *c = (struct nn_cmsghdr *)ctl;
    c->cmsg_len = NN_CMSG_LEN(to->route_len);
    c->cmsg_level = PROTO_SP;
    c->cmsg_type = SP_HDR;
    memcpy(NN_CMSG_DATA(c), to->route, to->route_len);
    struct nn_iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    struct nn_msghdr h = {.msg_iov = &iov,
                          .msg_iovlen = 1,
                          .msg_control = ctl,
                          .msg_controllen = NN_CMSG_SPACE(to->route_len)};
    if (nn_sendmsg(t->sock, &h, 0) < 0)
        return sl_err_set(err, SL_EIO, "%s: reply of %zu bytes: %s", t->url, n,
                          nn_strerror(nn_errno()));
    return 0;
}

void *sl_transport_alloc(size_t n) { return nn_allocmsg(n ? n : 1, 0); }

void sl_transport_free(void *buf)
{
    if (buf)
        nn_freemsg(buf);
}

int sl_transport_send_owned(sl_transport *t, void *buf, size_t n, sl_err *err)
{
    /* nanomsg takes the buffer only on success; the length comes from the
     * allocation, so reallocate-free trimming is not possible: callers
     * allocate exactly n bytes. */
    void *p = buf;
    if (nn_send(t->sock, &p, NN_MSG, 0) < 0) {
        int e = nn_errno();
        nn_freemsg(buf);
        return sl_err_set(err, SL_EIO, "%s: send of %zu bytes: %s", t->url, n, nn_strerror(e));
    }
    return 0;
}

/* One raw request; nanomsg takes buf only on success. */
static int request_msg(sl_transport *t, uint32_t id, void *buf, size_t n, sl_err *err)
{
    if (!t->raw)
        return sl_err_set(err, SL_ESTATE, "%s: request ids need a raw REQ socket", t->url);
    if (id == 0 || id > 0x7fffffffu)
        return sl_err_set(err, SL_EINVAL, "%s: request id %u outside 1..0x7fffffff", t->url, id);
    /* Raw REQ drops what its connection cannot take at once: wait first. */
    struct nn_pollfd pfd = {.fd = t->sock, .events = NN_POLLOUT};
    int prc = nn_poll(&pfd, 1, t->sndto);
    if (prc < 0 && nn_errno() != EINTR)
        return sl_err_set(err, SL_EIO, "%s: poll: %s", t->url, nn_strerror(nn_errno()));
    if (prc <= 0 || !(pfd.revents & NN_POLLOUT))
        return sl_err_set(err, SL_EIO, "%s: cannot send within %d ms (server unreachable?)",
                          t->url, t->sndto);
    /* nanomsg 1.1.5's SP_HDR property is a size_t length, then the header:
     * here the request id, big-endian, top bit set (bottom of the
     * backtrace). Received routes have the same layout. */
    enum { HDR = sizeof(size_t) + 4 };
    _Alignas(max_align_t) uint8_t ctl[NN_CMSG_SPACE(HDR)];
    memset(ctl, 0, sizeof ctl);
    struct nn_cmsghdr *c = (struct nn_cmsghdr *)ctl;
    c->cmsg_len = NN_CMSG_LEN(HDR);
    c->cmsg_level = PROTO_SP;
    c->cmsg_type = SP_HDR;
    uint32_t v = id | 0x80000000u;
    size_t four = 4;
    uint8_t *d = NN_CMSG_DATA(c);
    memcpy(d, &four, sizeof four);
    d += sizeof four;
    d[0] = (uint8_t)(v >> 24), d[1] = (uint8_t)(v >> 16), d[2] = (uint8_t)(v >> 8), d[3] = (uint8_t)v;
    void *p = buf;
    struct nn_iovec iov = {.iov_base = &p, .iov_len = NN_MSG}; /* zero-copy */
    struct nn_msghdr h = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (nn_sendmsg(t->sock, &h, 0) < 0)
        return sl_err_set(err, SL_EIO, "%s: send of %zu bytes: %s", t->url, n,
                          nn_strerror(nn_errno()));
    return 0;
}

int sl_transport_request_owned(sl_transport *t, uint32_t id, void *buf, size_t n, sl_err *err)
{
    int rc = request_msg(t, id, buf, n, err);
    if (rc)
        nn_freemsg(buf);
    return rc;
}

uint32_t sl_transport_msg_id(const sl_transport_msg *m)
{
    size_t len = 0;
    if (!m || m->route_len < sizeof len + 4)
        return 0;
    memcpy(&len, m->route, sizeof len); /* see sl_transport_request_owned */
    if (len != 4)
        return 0;
    const uint8_t *p = m->route + sizeof len;
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return v & 0x80000000u ? v & 0x7fffffffu : 0;
}

const char *sl_transport_where(const sl_transport *t) { return t->url; }

void sl_transport_close(sl_transport *t)
{
    if (!t)
        return;
    nn_close(t->sock);
    free(t);
}
