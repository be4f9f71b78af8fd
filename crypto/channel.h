/* crypto/channel.h - the authenticated, encrypted channel between the server
 * and the sites (docs/protocol.md has the message table, the state machine
 * and the threat model).
 *
 * Handshake (SIGMA-style, 1.5 round trips over REQ/REP): ephemeral X25519 on
 * both sides, the server's certificate and Ed25519 signature over the
 * transcript in HELLO_REPLY, the site's certificate and signature inside the
 * first sealed message (FINISH), both certificates verified against the
 * deployment CA with OpenSSL (the server also checks its revocation list,
 * re-read whenever the file changes). Keys for each direction come from
 * BLAKE2b over the X25519 secret and the transcript. Every later message is
 * XChaCha20-Poly1305 with a random nonce; the frame header (session id,
 * type, counter, ack, nonce, length) is the associated data, and counters
 * must strictly increase: a replayed, reordered, truncated or altered message
 * is refused and changes nothing. Sessions expire (session_ttl) and are
 * resumed with a one-time ticket plus a fresh X25519 exchange (ticket_ttl
 * bounds how long a site goes without a full certificate check).
 *
 * Transport: nanomsg REQ/REP (shared/transport). A request re-sent by REQ
 * (NN_REQ_RESEND_IVL, or after a reconnect) carries the same counter and
 * nonce; the server recognises it after authenticating it and is never
 * processed twice nor treated as an attack: a re-send on the same connection
 * is dropped (the answer is already on its way), a re-send after a reconnect
 * is answered with the reply cached for it.
 *
 * Pipelining: a site may have up to SL_CHAN_WINDOW sealed requests in
 * flight on one session (sl_chan_client_send/recv, and the chunked fetch),
 * so its sealing, the transfer and the server's opening overlap. They go on
 * a second, raw REQ connection with request ids of the channel's own; the
 * counters still strictly increase, the server still accepts each counter
 * once and only above the last one it accepted (a gap is accepted: the
 * missing requests can never be accepted later), and replies are accepted
 * strictly in request order. The server caches its answers to the last
 * SL_CHAN_WINDOW requests of a session, so a re-send of any request of the
 * window (after a lost connection or a reply nanomsg dropped) is answered
 * from there and never processed twice.
 *
 * Two layers of API: the byte-level state machines (process a frame, get the
 * frame to answer with) that tests and fuzzers drive directly, and the
 * socket-level calls (sl_chan_server_next/reply, sl_chan_client_call/fetch)
 * the roles use.
 *
 * Ownership: objects are created by _create and released by _free (NULL is
 * fine). Long-lived keys live in sodium_malloc'd memory and are wiped on
 * expiry, close and free. Frames handed out are borrowed until the next call
 * on the same object unless documented otherwise. Thread-safety: none; one
 * server or client object per thread. */
#ifndef SL_CHANNEL_H
#define SL_CHANNEL_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/identity.h"
#include "shared/err.h"
#include "shared/wire.h"

#define SL_CHAN_PATH_MAX 1024
#define SL_CHAN_DEFAULT_SESSION_TTL 3600u  /* seconds */
#define SL_CHAN_DEFAULT_TICKET_TTL 86400u  /* seconds */
#define SL_CHAN_MAX_TTL (30u * 86400u)
#define SL_CHAN_DEFAULT_MAX_SESSIONS 256u
#define SL_CHAN_MAX_SESSIONS 4096u
#define SL_CHAN_MAX_PENDING 64u            /* handshakes between HELLO and FINISH */
#define SL_CHAN_PENDING_TTL_MS 30000u      /* a HELLO not finished by then is dropped */
#define SL_CHAN_SESSIONS_PER_PEER 4u       /* a site's oldest session goes first */
#define SL_CHAN_MAX_FILES 16u              /* files a server offers for transfer */
#define SL_CHAN_DEFAULT_CHUNK (1u << 20)   /* transfer chunk, bytes */
#define SL_CHAN_DEFAULT_TIMEOUT_MS 120000  /* client: wait for one reply */
#define SL_CHAN_SYNC_EVERY (64u << 20)     /* fetch: fdatasync + checkpoint period, bytes */
#define SL_CHAN_WINDOW 4u                  /* requests a site may have in flight on a session */
#define SL_CHAN_OVERDUE_MS 1000            /* stream: first re-send of an unanswered request */
#define SL_CHAN_STREAM_SNDBUF (256 << 10)  /* stream: kernel send buffer (see stream_transport) */

typedef enum sl_chan_log_level { SL_CHAN_LOG_INFO = 1, SL_CHAN_LOG_WARN = 2 } sl_chan_log_level;
/* Receives one line without newline. Lines name peers and fingerprints,
 * never key material. */
typedef void (*sl_chan_log_fn)(void *ctx, sl_chan_log_level level, const char *line);
/* Milliseconds on a monotonic clock (tests substitute their own). */
typedef uint64_t (*sl_chan_clock_fn)(void *ctx);

/* ---- configuration ------------------------------------------------------ */

typedef struct sl_chan_server_cfg {
    char listen[256];             /* HOST:PORT to bind */
    char cert[SL_CHAN_PATH_MAX];  /* server.crt */
    char key[SL_CHAN_PATH_MAX];   /* server.key (0600) */
    char ca[SL_CHAN_PATH_MAX];    /* ca.crt */
    char crl[SL_CHAN_PATH_MAX];   /* crl.pem; empty disables revocation checks */
    uint32_t session_ttl, ticket_ttl; /* seconds; 0 = defaults */
    uint32_t max_sessions;            /* 0 = SL_CHAN_DEFAULT_MAX_SESSIONS */
    sl_chan_log_fn log;               /* NULL: lines go to stderr */
    void *log_ctx;
    sl_chan_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
} sl_chan_server_cfg;

typedef struct sl_chan_client_cfg {
    char server[256];             /* HOST:PORT to connect to */
    char name[SL_IDENTITY_NAME_MAX + 1]; /* this site's name; must match its certificate */
    char cert[SL_CHAN_PATH_MAX];  /* site.crt */
    char key[SL_CHAN_PATH_MAX];   /* site.key (0600) */
    char ca[SL_CHAN_PATH_MAX];    /* ca.crt */
    char crl[SL_CHAN_PATH_MAX];   /* optional CRL for the server's certificate */
    int timeout_ms;               /* per reply; 0 = SL_CHAN_DEFAULT_TIMEOUT_MS */
    int resend_ivl_ms;            /* NN_REQ_RESEND_IVL; 0 = 60000 */
    sl_chan_log_fn log;
    void *log_ctx;
    sl_chan_clock_fn clock;
    void *clock_ctx;
} sl_chan_client_cfg;

/* Reads server.ini / client.ini (inih; docs/formats.md). Relative paths are
 * resolved against the folder of the .ini file. Unknown keys, bad numbers
 * and missing required keys are errors naming the file, line and key. */
int sl_chan_server_config_load(const char *ini_path, sl_chan_server_cfg *cfg, sl_err *err);
int sl_chan_client_config_load(const char *ini_path, sl_chan_client_cfg *cfg, sl_err *err);

/* ---- server ------------------------------------------------------------- */

typedef struct sl_chan_server sl_chan_server;

/* One application request handed to the server's caller. */
typedef struct sl_chan_request {
    uint16_t type;          /* 0: nothing for the application */
    const uint8_t *payload; /* borrowed until the reply (or the next call) */
    size_t len;
    char peer[SL_IDENTITY_NAME_MAX + 1]; /* authenticated site name */
    uint8_t sid[SL_WIRE_SID_BYTES];      /* session the request came on */
} sl_chan_request;

/* Loads the server's identity (key file mode checked), the CA and the CRL.
 * Opens no socket. */
int sl_chan_server_create(const sl_chan_server_cfg *cfg, sl_chan_server **out, sl_err *err);
void sl_chan_server_free(sl_chan_server *s);

/* Byte level. Processes one received frame (decrypted in place, so frame
 * must be writable and stay alive while req->payload is used). route is the
 * transport's route of the frame (NULL for none): a re-send arriving along
 * the same route as the frame it repeats gets no answer. Outcomes:
 *   - an application request: returns 0, req->type != 0, *reply NULL; the
 *     caller must then call sl_chan_server_seal_reply;
 *   - a protocol message answered internally (handshake, resumption, re-sent
 *     request, file transfer, close): returns 0, req->type == 0, *reply set;
 *   - a re-send on the same route: returns 0, req->type == 0, *reply NULL
 *     (send nothing);
 *   - a refusal: returns the negative SL_E* code with err saying why (also
 *     logged), *reply set to an ERROR frame; no session state changed.
 * *reply is borrowed until the next call. */
int sl_chan_server_process(sl_chan_server *s, uint8_t *frame, size_t n, const uint8_t *route,
                           size_t route_len, sl_chan_request *req, const uint8_t **reply,
                           size_t *reply_len, sl_err *err);
/* Seals the reply to the request process() just returned. type must be
 * 1..SL_WIRE_APP_MAX; n <= SL_WIRE_MAX_PAYLOAD. *reply is borrowed (it is
 * also the cached answer to a re-send of that request). */
int sl_chan_server_seal_reply(sl_chan_server *s, uint16_t type, const void *payload, size_t n,
                              const uint8_t **reply, size_t *reply_len, sl_err *err);
/* As seal_reply, but an authenticated refusal (the client's call returns
 * an error carrying msg). */
int sl_chan_server_seal_error(sl_chan_server *s, uint16_t code, const char *msg,
                              const uint8_t **reply, size_t *reply_len, sl_err *err);

/* Socket level. Binds cfg->listen. */
int sl_chan_server_listen(sl_chan_server *s, sl_err *err);
/* Receives and answers protocol traffic until an application request
 * arrives (returns 0 with req->type != 0; answer it with
 * sl_chan_server_reply) or timeout_ms passes (returns 0 with req->type == 0).
 * Refused frames are answered, logged and not returned. Negative only when
 * the socket fails. */
int sl_chan_server_next(sl_chan_server *s, int timeout_ms, sl_chan_request *req, sl_err *err);
int sl_chan_server_reply(sl_chan_server *s, uint16_t type, const void *payload, size_t n,
                         sl_err *err);
int sl_chan_server_reply_error(sl_chan_server *s, uint16_t code, const char *msg, sl_err *err);

/* Deferred answers (long polling): the caller may keep a request
 * unanswered and serve others meanwhile. defer() takes the request that
 * process() or next() just returned (at the socket level its payload is
 * released: copy what is needed first); the site's channel stays waiting
 * for that answer. A re-send of a deferred request is never processed
 * again: one on the same route is dropped, one on a new route (a
 * reconnect, a stream re-send) moves the answer there. The seal/reply
 * calls answer it later, on the route its last copy came on. They fail
 * with SL_ESTATE, sending nothing, when the answer can no longer be given:
 * the session ended (closed, expired and swept, replaced) or the site sent
 * a later request (it gave up waiting). A site waits for an answer at most
 * its timeout_ms, so hold requests for less. */
typedef struct sl_chan_deferred {
    int slot;                       /* session slot */
    uint8_t sid[SL_WIRE_SID_BYTES]; /* the session, to detect a reused slot */
    uint64_t counter;               /* the request's counter */
} sl_chan_deferred;
int sl_chan_server_defer(sl_chan_server *s, sl_chan_deferred *d, sl_err *err);
/* Byte level: *reply is borrowed as for seal_reply. */
int sl_chan_server_seal_deferred(sl_chan_server *s, const sl_chan_deferred *d, uint16_t type,
                                 const void *payload, size_t n, const uint8_t **reply,
                                 size_t *reply_len, sl_err *err);
/* Socket level: seals and sends. */
int sl_chan_server_reply_deferred(sl_chan_server *s, const sl_chan_deferred *d, uint16_t type,
                                  const void *payload, size_t n, sl_err *err);
int sl_chan_server_reply_deferred_error(sl_chan_server *s, const sl_chan_deferred *d,
                                        uint16_t code, const char *msg, sl_err *err);

/* Offers the file at path for chunked transfer under name (a transfer
 * name, see sl_wire_check_file_name). Its size and BLAKE2b-256 digest are
 * computed now; if the file changes afterwards, chunk requests are refused.
 * The file stays open until the server is freed. */
int sl_chan_server_add_file(sl_chan_server *s, const char *name, const char *path, sl_err *err);

/* Counters for tests, logs and the benchmark. */
typedef struct sl_chan_server_stats {
    uint64_t handshakes, resumptions, requests, resent, refused, sessions;
} sl_chan_server_stats;
void sl_chan_server_get_stats(const sl_chan_server *s, sl_chan_server_stats *st);

/* ---- client ------------------------------------------------------------- */

typedef struct sl_chan_client sl_chan_client;

typedef enum sl_chan_client_state {
    SL_CHAN_IDLE = 0,        /* no session (may hold a resumption ticket) */
    SL_CHAN_HELLO_SENT = 1,  /* waiting for HELLO_REPLY */
    SL_CHAN_FINISH_SENT = 2, /* waiting for FINISH_OK */
    SL_CHAN_RESUME_SENT = 3, /* waiting for RESUME_OK */
    SL_CHAN_READY = 4,       /* session established */
    SL_CHAN_REQUEST_SENT = 5 /* waiting for the REPLY to a DATA */
} sl_chan_client_state;

/* Loads the site's identity (key file mode checked; the certificate's name
 * must equal cfg->name when that is set) and the CA. Opens no socket. */
int sl_chan_client_create(const sl_chan_client_cfg *cfg, sl_chan_client **out, sl_err *err);
void sl_chan_client_free(sl_chan_client *c);
sl_chan_client_state sl_chan_client_get_state(const sl_chan_client *c);
/* 1 if a session is established and has not reached its expiry margin. */
int sl_chan_client_session_fresh(const sl_chan_client *c);

/* Byte level. Frames produced here are allocated with sl_transport_alloc
 * and owned by the caller (send with sl_transport_send_owned, or release
 * with sl_transport_free).
 *   start(): HELLO, or RESUME when resume != 0 and a valid ticket is held;
 *   handle(): consumes HELLO_REPLY, FINISH_OK, RESUME_OK; *next is the frame
 *     to send next (FINISH) or NULL once the session is ready;
 *   seal(): a DATA frame for an application message (replacing any DATA
 *     still unanswered: lockstep);
 *   seal_pipelined(): a DATA frame added to those in flight (at most
 *     SL_CHAN_WINDOW; SL_ELIMIT beyond);
 *   open(): consumes the REPLY to the oldest DATA in flight; a REPLY to any
 *     other request is refused.
 * A refused frame (bad signature, certificate, tag, counter, wrong type)
 * returns the negative code and leaves the client's state as it was. */
int sl_chan_client_start(sl_chan_client *c, int resume, uint8_t **frame, size_t *n, sl_err *err);
int sl_chan_client_handle(sl_chan_client *c, uint8_t *frame, size_t n, uint8_t **next,
                          size_t *next_n, sl_err *err);
int sl_chan_client_seal(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        uint8_t **frame, size_t *n, sl_err *err);
int sl_chan_client_seal_pipelined(sl_chan_client *c, uint16_t type, const void *payload,
                                  size_t len, uint8_t **frame, size_t *n, sl_err *err);
/* Requests sealed and not yet answered (0..SL_CHAN_WINDOW). */
unsigned sl_chan_client_in_flight(const sl_chan_client *c);
/* On success *app views into frame (decrypted in place). An authenticated
 * application error from the server is returned as SL_ENOTFOUND (no such
 * file) or SL_EINVAL with its message. */
int sl_chan_client_open(sl_chan_client *c, uint8_t *frame, size_t n, sl_wire_app *app,
                        sl_err *err);

/* Socket level. */
typedef struct sl_chan_reply {
    uint16_t type;
    const uint8_t *payload; /* valid until sl_chan_reply_free */
    size_t len;
    void *msg_;             /* transport message holding the bytes */
} sl_chan_reply;
void sl_chan_reply_free(sl_chan_reply *r);

/* Connects (if needed) and completes a handshake, resuming when a ticket
 * is held. */
int sl_chan_client_connect(sl_chan_client *c, sl_err *err);
/* Sends one application request and waits for its reply. Establishes or
 * resumes the session first when needed (expiry is anticipated). A request
 * is never re-sent in a new session by this call: if the session is lost
 * (the server answers that it is unknown or expired) the call fails and the
 * next call starts a new one. */
int sl_chan_client_call(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        sl_chan_reply *reply, sl_err *err);
/* Streaming: send() seals and sends one request without waiting (at most
 * SL_CHAN_WINDOW in flight, SL_ELIMIT beyond; establishes or resumes the
 * session first when nothing is in flight); recv() waits for the reply to
 * the oldest one, in order. The payload is copied at send(). A request
 * whose answer does not come is sent again, byte for byte (at once when a
 * later answer shows it was lost, else after SL_CHAN_OVERDUE_MS without any
 * answer, doubling up to resend_ivl_ms), and answered from the server's cache if it was
 * already processed. When recv() fails (no answer within timeout_ms, a
 * refused frame, a lost session) everything in flight is given up and the
 * caller decides what to send again; an authenticated application refusal
 * fails that request only. sl_chan_client_call is refused while streamed
 * requests are in flight. */
int sl_chan_client_send(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        sl_err *err);
int sl_chan_client_recv(sl_chan_client *c, sl_chan_reply *reply, sl_err *err);
/* send() without the copy: reserve() gives len bytes inside a new frame for
 * the caller to fill (valid until send_reserved, the next reserve or free);
 * send_reserved() seals them in place and sends them as send() does. The
 * buffer is used up by send_reserved in every case. */
int sl_chan_client_reserve(sl_chan_client *c, size_t len, uint8_t **buf, sl_err *err);
int sl_chan_client_send_reserved(sl_chan_client *c, uint16_t type, sl_err *err);
/* Progress of a fetch: bytes present so far and total. Returning non-zero
 * stops the fetch: the bytes so far are made durable and recorded, and the
 * fetch returns SL_EABORT; the next fetch resumes there. */
typedef int (*sl_chan_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* Downloads the server's file `name` to dest in chunks. Data goes to
 * dest.part, with dest.part.info recording the expected digest and the
 * offset made durable so far; an interrupted fetch resumes from there. The
 * whole file's BLAKE2b-256 must match the server's before dest.part is
 * renamed to dest. Chunk requests are streamed, SL_CHAN_WINDOW in flight;
 * they are idempotent and are retried (after re-establishing the session if
 * needed) up to 3 times without progress. */
int sl_chan_client_fetch(sl_chan_client *c, const char *name, const char *dest,
                         sl_chan_progress_fn progress, void *ctx, sl_err *err);
/* 1 when dest already holds the server's file `name` (same size, same
 * BLAKE2b-256 as the server announces), 0 when it does not (missing or
 * different), < 0 on error. Transfers no file data: a site restarting with
 * a complete download keeps it. */
int sl_chan_client_have(sl_chan_client *c, const char *name, const char *dest, sl_err *err);
/* Ends the session on both sides (keys and ticket wiped). */
int sl_chan_client_close(sl_chan_client *c, sl_err *err);
/* The name the server authenticated us as, and its certificate's name. */
const char *sl_chan_client_peer(const sl_chan_client *c);

#endif
