/* shared/wire.h - versioned codec of the channel's messages (docs/protocol.md
 * has the table). Every frame starts with the magic "SL", a version byte and a
 * type byte; integers are little-endian; each variable-length field has a
 * named limit checked before anything is read or allocated. Decoders read
 * only through sl_reader, refuse trailing bytes, and leave the output
 * untouched on failure. Decoded byte fields (certificates, ciphertexts,
 * payloads) are borrowed views into the caller's buffer.
 *
 * Two layers: outer frames (what travels on the transport; sealed frames
 * carry an XChaCha20-Poly1305 ciphertext) and inner messages (the plaintext
 * inside a sealed frame). The codec does no cryptography. Stateless and
 * thread-safe. */
#ifndef SL_WIRE_H
#define SL_WIRE_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_WIRE_VERSION 1
#define SL_WIRE_MAGIC0 0x53 /* 'S' */
#define SL_WIRE_MAGIC1 0x4c /* 'L' */

#define SL_WIRE_SID_BYTES 16       /* session id / resumption ticket id */
#define SL_WIRE_KEY_BYTES 32       /* X25519 public key */
#define SL_WIRE_RAND_BYTES 32      /* handshake nonce */
#define SL_WIRE_AEAD_NONCE_BYTES 24
#define SL_WIRE_TAG_BYTES 16
#define SL_WIRE_SIG_BYTES 64
#define SL_WIRE_MAC_BYTES 32
#define SL_WIRE_DIGEST_BYTES 32

/* Per-field limits. */
#define SL_WIRE_MAX_CERT 4096u                /* DER certificate */
#define SL_WIRE_MAX_TEXT 256u                 /* error message */
#define SL_WIRE_MAX_NAME 64u                  /* file or peer name */
#define SL_WIRE_MAX_PAYLOAD (16u << 20)       /* one application payload */
#define SL_WIRE_MAX_CHUNK (4u << 20)          /* one file chunk */
#define SL_WIRE_APP_HDR 4u                    /* inner app header: type u16, reserved u16 */
#define SL_WIRE_SEALED_HDR 64u                /* sealed frame header (= associated data) */
#define SL_WIRE_MAX_SEALED (SL_WIRE_APP_HDR + SL_WIRE_MAX_PAYLOAD + SL_WIRE_TAG_BYTES)
#define SL_WIRE_MAX_FRAME (SL_WIRE_SEALED_HDR + SL_WIRE_MAX_SEALED)

typedef enum sl_wire_type {
    SL_WIRE_HELLO = 1,       /* c->s  ephemeral key, nonce */
    SL_WIRE_HELLO_REPLY = 2, /* s->c  session id, ephemeral key, nonce, certificate, signature */
    SL_WIRE_FINISH = 3,      /* c->s  sealed: certificate, signature */
    SL_WIRE_FINISH_OK = 4,   /* s->c  sealed: lifetimes, peer name */
    SL_WIRE_RESUME = 5,      /* c->s  ticket, ephemeral key, nonce, MAC */
    SL_WIRE_RESUME_OK = 6,   /* s->c  new session id, ephemeral key, nonce, lifetimes, MAC */
    SL_WIRE_DATA = 7,        /* c->s  sealed application request (ack = oldest awaited) */
    SL_WIRE_REPLY = 8,       /* s->c  sealed application reply (ack = request counter) */
    SL_WIRE_ERROR = 9,       /* s->c  plaintext refusal: code, message (unauthenticated) */
} sl_wire_type;

/* Codes of ERROR frames and of authenticated application errors. */
typedef enum sl_wire_code {
    SL_WIRE_ERR_VERSION = 1,   /* protocol version not spoken */
    SL_WIRE_ERR_MALFORMED = 2, /* frame does not decode */
    SL_WIRE_ERR_STATE = 3,     /* message of the wrong type for the state */
    SL_WIRE_ERR_AUTH = 4,      /* MAC, AEAD tag or signature did not verify */
    SL_WIRE_ERR_REPLAY = 5,    /* counter not above the last accepted one */
    SL_WIRE_ERR_SESSION = 6,   /* unknown or expired session or ticket */
    SL_WIRE_ERR_DENIED = 7,    /* certificate refused (other CA, expired, revoked) */
    SL_WIRE_ERR_BUSY = 8,      /* no room for another session */
    SL_WIRE_ERR_NOTFOUND = 9,  /* no such file (application level) */
    SL_WIRE_ERR_APP = 10,      /* refused by the application */
} sl_wire_code;

typedef struct sl_wire_hello {
    uint8_t eph[SL_WIRE_KEY_BYTES];
    uint8_t rand[SL_WIRE_RAND_BYTES];
} sl_wire_hello;

typedef struct sl_wire_hello_reply {
    uint8_t sid[SL_WIRE_SID_BYTES];
    uint8_t eph[SL_WIRE_KEY_BYTES];
    uint8_t rand[SL_WIRE_RAND_BYTES];
    uint32_t session_ttl, ticket_ttl; /* seconds */
    const uint8_t *cert;              /* DER, borrowed */
    size_t cert_len;                  /* 1..SL_WIRE_MAX_CERT */
    uint8_t sig[SL_WIRE_SIG_BYTES];   /* covers the transcript, see docs/protocol.md */
} sl_wire_hello_reply;

typedef struct sl_wire_resume {
    uint8_t ticket[SL_WIRE_SID_BYTES];
    uint8_t eph[SL_WIRE_KEY_BYTES];
    uint8_t rand[SL_WIRE_RAND_BYTES];
    uint8_t mac[SL_WIRE_MAC_BYTES]; /* over all preceding bytes of the frame */
} sl_wire_resume;

typedef struct sl_wire_resume_ok {
    uint8_t sid[SL_WIRE_SID_BYTES];
    uint8_t eph[SL_WIRE_KEY_BYTES];
    uint8_t rand[SL_WIRE_RAND_BYTES];
    uint32_t session_ttl, ticket_ttl;
    uint8_t mac[SL_WIRE_MAC_BYTES]; /* over the resumption transcript */
} sl_wire_resume_ok;

/* FINISH, FINISH_OK, DATA and REPLY. The first SL_WIRE_SEALED_HDR bytes of
 * the frame are the AEAD's associated data. */
typedef struct sl_wire_sealed {
    uint8_t sid[SL_WIRE_SID_BYTES];
    uint64_t counter; /* sender's message counter, strictly increasing */
    uint64_t ack;     /* REPLY: counter of the request answered; DATA: the oldest
                       * request (<= counter) still awaiting its reply; else 0 */
    uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES];
    const uint8_t *ct; /* ciphertext || tag, borrowed */
    size_t ct_len;     /* SL_WIRE_TAG_BYTES..SL_WIRE_MAX_SEALED */
} sl_wire_sealed;

typedef struct sl_wire_error {
    uint16_t code;                    /* sl_wire_code */
    char msg[SL_WIRE_MAX_TEXT + 1];   /* printable ASCII, NUL-terminated */
} sl_wire_error;

typedef struct sl_wire_msg {
    uint8_t type; /* sl_wire_type */
    union {
        sl_wire_hello hello;
        sl_wire_hello_reply hello_reply;
        sl_wire_resume resume;
        sl_wire_resume_ok resume_ok;
        sl_wire_sealed sealed; /* FINISH, FINISH_OK, DATA, REPLY */
        sl_wire_error error;
    } u;
} sl_wire_msg;

/* Decodes one frame. SL_ELIMIT if n > SL_WIRE_MAX_FRAME, SL_EFORMAT for
 * anything malformed (the message names the field and offset). */
int sl_wire_decode(const uint8_t *buf, size_t n, sl_wire_msg *m, sl_err *err);
/* Encodes m into a malloc'd buffer (free()). SL_ELIMIT if a field exceeds
 * its limit, SL_EINVAL for an unknown type or a non-printable message. */
int sl_wire_encode(const sl_wire_msg *m, uint8_t **out, size_t *n, sl_err *err);
/* Writes the SL_WIRE_SEALED_HDR-byte header of a sealed frame of the given
 * type whose ciphertext (s->ct_len bytes, s->ct ignored) follows it; lets the
 * sender encrypt in place without copying the payload again. */
void sl_wire_sealed_header(uint8_t out[SL_WIRE_SEALED_HDR], uint8_t type,
                           const sl_wire_sealed *s);
/* 1 if type is FINISH, FINISH_OK, DATA or REPLY. */
int sl_wire_is_sealed(uint8_t type);
const char *sl_wire_type_name(uint8_t type);
const char *sl_wire_code_name(uint16_t code);

/* ---- inner messages (plaintext of sealed frames) ------------------------ */

typedef struct sl_wire_finish {
    const uint8_t *cert; /* site certificate, DER, borrowed */
    size_t cert_len;
    uint8_t sig[SL_WIRE_SIG_BYTES];
} sl_wire_finish;

typedef struct sl_wire_finish_ok {
    uint32_t session_ttl, ticket_ttl;
    char peer[SL_WIRE_MAX_NAME + 1]; /* the site name the server authenticated */
} sl_wire_finish_ok;

int sl_wire_finish_encode(const sl_wire_finish *f, uint8_t **out, size_t *n, sl_err *err);
int sl_wire_finish_decode(const uint8_t *buf, size_t n, sl_wire_finish *f, sl_err *err);
int sl_wire_finish_ok_encode(const sl_wire_finish_ok *f, uint8_t **out, size_t *n, sl_err *err);
int sl_wire_finish_ok_decode(const uint8_t *buf, size_t n, sl_wire_finish_ok *f, sl_err *err);

/* Application messages (inside DATA and REPLY): a 4-byte header (type u16,
 * reserved u16 = 0) and the payload, whose length is the rest. Types
 * 1..SL_WIRE_APP_MAX belong to the application; the ones above are the
 * channel's own (file transfer, errors, close). */
#define SL_WIRE_APP_MAX 0xfeffu
enum {
    SL_WIRE_APP_NONE = 0,
    SL_WIRE_APP_FILE_INFO_REQ = 0xff01, /* sl_wire_file_req (offset, len 0) */
    SL_WIRE_APP_FILE_INFO = 0xff02,     /* sl_wire_file_info */
    SL_WIRE_APP_CHUNK_REQ = 0xff03,     /* sl_wire_file_req */
    SL_WIRE_APP_CHUNK = 0xff04,         /* offset u64 + bytes */
    SL_WIRE_APP_ERROR = 0xff05,         /* sl_wire_error (authenticated) */
    SL_WIRE_APP_CLOSE = 0xff06,         /* empty: end the session */
    SL_WIRE_APP_CLOSE_OK = 0xff07,      /* empty */
};

/* Application types of the federated runtime (payloads: crypto/fedmsg.h).
 * Sites only ask (REQ); the server answers each request with one reply. */
enum {
    SL_WIRE_APP_FED_JOIN = 0x0201,    /* c->s  site certificate */
    SL_WIRE_APP_FED_JOIN_OK = 0x0202, /* s->c  server certificate, model files */
    SL_WIRE_APP_FED_POLL = 0x0203,    /* c->s  "what next?" (round the site is in) */
    SL_WIRE_APP_FED_WAIT = 0x0204,    /* s->c  nothing yet; ask again in ms */
    SL_WIRE_APP_FED_DONE = 0x0205,    /* s->c  the job is over; reason */
    SL_WIRE_APP_FED_TASK = 0x0206,    /* s->c  round, kind, body */
    SL_WIRE_APP_FED_SUBMIT = 0x0207,  /* c->s  round, secure-aggregation message */
    SL_WIRE_APP_FED_ACK = 0x0208,     /* s->c  empty: submission accepted */
};

typedef struct sl_wire_app {
    uint16_t type;
    const uint8_t *payload; /* borrowed */
    size_t len;             /* <= SL_WIRE_MAX_PAYLOAD */
} sl_wire_app;

void sl_wire_app_header(uint8_t out[SL_WIRE_APP_HDR], uint16_t type);
int sl_wire_app_decode(const uint8_t *buf, size_t n, sl_wire_app *a, sl_err *err);

typedef struct sl_wire_file_req {
    char name[SL_WIRE_MAX_NAME + 1]; /* [A-Za-z0-9._-], not starting with '.' */
    uint64_t offset;
    uint32_t len; /* <= SL_WIRE_MAX_CHUNK */
} sl_wire_file_req;

typedef struct sl_wire_file_info {
    uint64_t size;                            /* bytes */
    uint32_t chunk;                           /* preferred chunk size, 1..SL_WIRE_MAX_CHUNK */
    uint8_t digest[SL_WIRE_DIGEST_BYTES];     /* BLAKE2b-256 of the whole file */
} sl_wire_file_info;

typedef struct sl_wire_chunk {
    uint64_t offset;
    const uint8_t *data; /* borrowed */
    size_t len;          /* <= SL_WIRE_MAX_CHUNK */
} sl_wire_chunk;

/* Payload codecs (the application header is not included). */
int sl_wire_file_req_encode(const sl_wire_file_req *r, uint8_t **out, size_t *n, sl_err *err);
int sl_wire_file_req_decode(const uint8_t *buf, size_t n, sl_wire_file_req *r, sl_err *err);
int sl_wire_file_info_encode(const sl_wire_file_info *f, uint8_t **out, size_t *n, sl_err *err);
int sl_wire_file_info_decode(const uint8_t *buf, size_t n, sl_wire_file_info *f, sl_err *err);
/* The chunk header only (offset u64); the data follows it. */
#define SL_WIRE_CHUNK_HDR 8u
void sl_wire_chunk_header(uint8_t out[SL_WIRE_CHUNK_HDR], uint64_t offset);
int sl_wire_chunk_decode(const uint8_t *buf, size_t n, sl_wire_chunk *c, sl_err *err);
int sl_wire_app_error_encode(const sl_wire_error *e, uint8_t **out, size_t *n, sl_err *err);
int sl_wire_app_error_decode(const uint8_t *buf, size_t n, sl_wire_error *e, sl_err *err);
/* 0 if name is a valid transfer name; else SL_EINVAL quoting it. */
int sl_wire_check_file_name(const char *name, sl_err *err);

#endif
