#include "shared/pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's pattern with \s spelled as "whitespace except U+180E" (see the
 * header): [^\S\x{180E}] is \s minus U+180E, [\S\x{180E}] its complement. */
static const char PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d"
    "| ?\\p{L}+"
    "| ?\\p{N}+"
    "| ?(?:[^\\s\\p{L}\\p{N}]|\\x{180E})+"
    "|[^\\S\\x{180E}]+(?![\\S\\x{180E}])"
    "|[^\\S\\x{180E}]+";

/* JIT stack bounds. The pattern has no nested repeats, so the default stack
 * would do; the larger maximum only guards against PCRE2 changes. */
#define JIT_STACK_MIN (32u << 10)
#define JIT_STACK_MAX (1u << 20)

struct sl_pretok {
    pcre2_code *re;
    int jit; /* 1 if JIT compilation succeeded */
};

int sl_pretok_create(sl_pretok **out, sl_err *err)
{
    sl_pretok *p = calloc(1, sizeof *p);
    if (!p)
        return sl_err_set(err, SL_ENOMEM, "pre-tokenizer: out of memory");
    int ec;
    PCRE2_SIZE eo;
    p->re = pcre2_compile((PCRE2_SPTR)PATTERN, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        free(p);
        return sl_err_set(err, SL_EINVAL, "pre-tokenizer: PCRE2 compile at offset %zu: %s",
                          (size_t)eo, (const char *)msg);
    }
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    *out = p;
    return 0;
}

void sl_pretok_free(sl_pretok *p)
{
    if (!p)
        return;
    pcre2_code_free(p->re);
    free(p);
}

int sl_pretok_each(const sl_pretok *p, const void *text, size_t n, sl_pretok_fn fn, void *ctx,
                   sl_err *err)
{
    const uint8_t *s = text;
    int rc = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = p->jit ? pcre2_jit_stack_create(JIT_STACK_MIN, JIT_STACK_MAX, NULL)
                                 : NULL;
    if (!md || !mc || (p->jit && !js)) {
        rc = sl_err_set(err, SL_ENOMEM, "pre-tokenizer: out of memory for match data");
        goto out;
    }
    if (js)
        pcre2_jit_stack_assign(mc, NULL, js);
    size_t at = 0;
    while (at < n) {
        /* The text was never checked as a whole: PCRE2_MATCH_INVALID_UTF
         * makes invalid sequences unmatchable instead of an error. */
        int m = pcre2_match(p->re, (PCRE2_SPTR)s, n, at, 0, md, mc);
        size_t ms = n, me = n;
        if (m >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else if (m != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = sl_err_set(err, SL_EINVAL, "pre-tokenizer: PCRE2 match at byte %zu: %s", at,
                            (const char *)msg);
            goto out;
        }
        if (ms > at && (rc = fn(ctx, s + at, ms - at)) != 0) /* invalid UTF-8 run */
            goto out;
        if (me > ms && (rc = fn(ctx, s + ms, me - ms)) != 0)
            goto out;
        if (me <= at) { /* cannot happen: every alternative consumes a character */
            rc = sl_err_set(err, SL_EINVAL, "pre-tokenizer: empty match at byte %zu", at);
            goto out;
        }
        at = me;
    }
out:
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return rc;
}

/* bytes_to_unicode: printable Latin-1 bytes ('!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF) keep their code point; the rest get 256, 257, ... in byte
 * order. */
static int printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t sl_pretok_byte_char(uint8_t b)
{
    if (printable(b))
        return b;
    uint32_t k = 0; /* rank of b among the non-printable bytes */
    for (unsigned i = 0; i < b; i++)
        k += !printable(i);
    return 256 + k;
}

int sl_pretok_char_byte(uint32_t c)
{
    if (c < 256)
        return printable(c) ? (int)c : -1;
    if (c >= 256 + 68)
        return -1;
    uint32_t k = c - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!printable(b) && k-- == 0)
            return (int)b;
    return -1;
}

void sl_pretok_byte_order(uint8_t order[256])
{
    unsigned i = 0;
    for (unsigned b = 0; b < 256; b++)
        if (printable(b))
            order[i++] = (uint8_t)b;
    for (unsigned b = 0; b < 256; b++)
        if (!printable(b))
            order[i++] = (uint8_t)b;
}

size_t sl_pretok_spell(const uint8_t *bytes, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = sl_pretok_byte_char(bytes[i]);
        if (c < 0x80) {
            out[o++] = (char)c;
        } else { /* every alphabet code point is below U+0800: two bytes */
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return o;
}

size_t sl_pretok_safe_cut(const uint8_t *text, size_t n)
{
    for (size_t p = n ? n - 1 : 0; p > 0; p--)
        if ((text[p] == ' ' || text[p] == '\n') && text[p - 1] >= 0x21 && text[p - 1] <= 0x7E)
            return p;
    return 0;
}
