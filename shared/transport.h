/* shared/transport.h - the nanomsg wrapper the channel runs on: a REP socket
 * the server binds (many sites, requests interleaved, one reply per request)
 * and a REQ socket a site connects out with (sites sit behind firewalls and
 * never listen). Moves opaque frames; knows nothing of their contents.
 *
 * The server's REP socket is raw (AF_SP_RAW): each request comes with its
 * route (nanomsg's backtrace: the connection's pipe id and REQ's request id)
 * and the reply is sent along it. The route lets the channel tell a REQ
 * timer re-send on a live connection (same route: the answer is already on
 * its way, so it sends nothing) from a re-send after a reconnect (new pipe:
 * it answers again from its cache). Answering both would also trip a leak in
 * nanomsg 1.1.5's REQ, which keeps only the last of several matching replies
 * that arrive before nn_recv and loses the others.
 *
 * nanomsg defaults that matter, all set explicitly here:
 *   NN_RCVMAXSIZE     1 MiB by default; set to opts.max_msg (the wire codec's
 *                     largest frame). A larger incoming message makes nanomsg
 *                     drop that connection; nothing reaches the caller.
 *   NN_REQ_RESEND_IVL REQ silently re-sends an unanswered request after 60 s
 *                     (and at once on reconnect); set to opts.resend_ivl_ms.
 *                     The channel layer answers a re-sent request from its
 *                     reply cache instead of processing it twice.
 *   NN_RCVTIMEO/NN_SNDTIMEO  per call / opts.send_timeout_ms.
 *   NN_TCP_NODELAY    on: handshakes are small request/reply exchanges.
 *
 * Pipelining (sl_transport_connect with opts.raw): a raw REQ socket
 * (AF_SP_RAW) has no re-send timer and no limit of one request in flight;
 * every request carries a request id chosen by the caller in its SP header
 * (sl_transport_request_owned) and the reply comes back with it
 * (sl_transport_msg_id). Two nanomsg 1.1.5 behaviours matter: raw REQ drops
 * a request silently when its connection is still busy writing the previous
 * one, so sl_transport_request_owned first waits (nn_poll, NN_POLLOUT) until the
 * socket can take it; and raw REP drops a reply silently when the
 * connection is still busy writing the previous reply, which the caller
 * must detect (the channel re-asks, see crypto/channel.h).
 *
 * Ownership: received messages are nanomsg buffers released with
 * sl_transport_msg_free. sl_transport_send_owned takes a buffer from
 * sl_transport_alloc (zero-copy). Not thread-safe: one socket per thread. */
#ifndef SL_TRANSPORT_H
#define SL_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_TRANSPORT_URL_MAX 300
#define SL_TRANSPORT_DEFAULT_RESEND_MS 60000
#define SL_TRANSPORT_DEFAULT_SEND_TIMEOUT_MS 60000

typedef struct sl_transport sl_transport;

typedef struct sl_transport_opts {
    size_t max_msg;      /* NN_RCVMAXSIZE; 0 means 1 MiB (nanomsg's default, made explicit) */
    int resend_ivl_ms;   /* REQ only; 0 means SL_TRANSPORT_DEFAULT_RESEND_MS */
    int send_timeout_ms; /* 0 means SL_TRANSPORT_DEFAULT_SEND_TIMEOUT_MS; -1 waits forever */
    int sockbuf_bytes;   /* NN_SNDBUF/NN_RCVBUF; 0 keeps nanomsg's 128 KiB */
    int sndbuf_bytes;    /* NN_SNDBUF alone when > 0 (overrides sockbuf_bytes for sending) */
    int raw;             /* connect only: a raw REQ socket (requests with ids) */
} sl_transport_opts;

#define SL_TRANSPORT_ROUTE_MAX 64

typedef struct sl_transport_msg {
    uint8_t *data; /* nanomsg-owned; NULL when nothing arrived */
    size_t len;
    uint8_t route[SL_TRANSPORT_ROUTE_MAX]; /* server side: where the reply goes */
    size_t route_len;
} sl_transport_msg;

/* "HOST:PORT", "[IPv6]:PORT" or "tcp://..." into a nanomsg URL. Refuses a
 * missing or out-of-range port and characters outside host names. */
int sl_transport_url(const char *addr, char url[SL_TRANSPORT_URL_MAX], sl_err *err);
/* Binds a REP socket on addr (server side). */
int sl_transport_listen(const char *addr, const sl_transport_opts *o, sl_transport **out,
                        sl_err *err);
/* Connects a REQ socket to addr (site side). Connection is asynchronous:
 * errors for an unreachable server show up as receive timeouts. */
int sl_transport_connect(const char *addr, const sl_transport_opts *o, sl_transport **out,
                         sl_err *err);
/* Waits up to timeout_ms (-1 forever) for one message. On timeout returns 0
 * with m->data == NULL; on an interrupted wait (signal) likewise. */
int sl_transport_recv(sl_transport *t, int timeout_ms, sl_transport_msg *m, sl_err *err);
void sl_transport_msg_free(sl_transport_msg *m);
/* Sends a copy of buf (client side). */
int sl_transport_send(sl_transport *t, const void *buf, size_t n, sl_err *err);
/* Sends a copy of buf back along the route of request `to` (server side). */
int sl_transport_reply(sl_transport *t, const sl_transport_msg *to, const void *buf, size_t n,
                       sl_err *err);
/* A buffer for sl_transport_send_owned; free with sl_transport_free if unsent. */
void *sl_transport_alloc(size_t n);
void sl_transport_free(void *buf);
/* Sends buf (from sl_transport_alloc) without copying; takes it in every case. */
int sl_transport_send_owned(sl_transport *t, void *buf, size_t n, sl_err *err);
/* Raw REQ only: sends buf (n bytes, from sl_transport_alloc, taken in every
 * case, no copy) as request `id` (1..0x7fffffff), after waiting up to the
 * send timeout for the connection to take it. */
int sl_transport_request_owned(sl_transport *t, uint32_t id, void *buf, size_t n, sl_err *err);
/* Raw REQ only: the request id a received reply answers, 0 if it has none. */
uint32_t sl_transport_msg_id(const sl_transport_msg *m);
/* The URL the socket was bound or connected to. */
const char *sl_transport_where(const sl_transport *t);
void sl_transport_close(sl_transport *t);

#endif
