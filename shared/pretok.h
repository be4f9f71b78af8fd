/* shared/pretok.h - GPT-2 pre-tokenisation and the byte-level alphabet, the
 * two pieces that the tokenizer (shared/tokenizer) and the BPE trainer
 * (shared/bpe_train) must share exactly.
 *
 * Pre-tokenisation splits text into pieces with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * run by PCRE2 (UTF + UCP, JIT). The reference encoder uses Python's `regex`
 * module; PCRE2's \s differs from it in one code point, U+180E (MONGOLIAN
 * VOWEL SEPARATOR, whitespace before Unicode 6.3, format character since),
 * so the compiled pattern writes \s as "\s except U+180E". Every other code
 * point classifies alike (checked over all of Unicode 14, PCRE2 10.42's
 * tables; code points assigned later are unknown to PCRE2 10.42).
 *
 * Text is (pointer, length): NUL bytes are ordinary characters. Bytes that
 * are not valid UTF-8 never match the pattern (PCRE2_MATCH_INVALID_UTF);
 * each maximal run of them becomes one piece of its own, so every byte of the
 * input lands in exactly one piece and the split never fails or crashes.
 *
 * Byte-level alphabet: GPT-2 maps each byte to one printable code point
 * (bytes_to_unicode in the reference encoder: printable Latin-1 bytes map to
 * themselves, the other 68 to U+0100..U+0143 in byte order). Vocabulary files
 * spell tokens in that alphabet; ids 0..255 of GPT-2 are the bytes in the
 * order sl_pretok_byte_order() gives.
 *
 * Ownership: an sl_pretok owns its compiled pattern; sl_pretok_each borrows
 * the text. Thread-safety: a loaded sl_pretok is immutable; any number of
 * threads may call sl_pretok_each on it at once. */
#ifndef SL_PRETOK_H
#define SL_PRETOK_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

typedef struct sl_pretok sl_pretok;

/* Compiles the pattern (JIT when available). */
int sl_pretok_create(sl_pretok **out, sl_err *err);
void sl_pretok_free(sl_pretok *p);

/* Called once per piece, in order; a non-zero return stops the split and is
 * returned by sl_pretok_each. */
typedef int (*sl_pretok_fn)(void *ctx, const uint8_t *piece, size_t n);
/* Splits text[0..n) into pieces. Returns 0, the callback's non-zero value,
 * or SL_ENOMEM / SL_EINVAL (a PCRE2 failure, named in err). */
int sl_pretok_each(const sl_pretok *p, const void *text, size_t n, sl_pretok_fn fn, void *ctx,
                   sl_err *err);

/* The code point byte b is spelled with in vocabulary files. */
uint32_t sl_pretok_byte_char(uint8_t b);
/* The byte spelled by code point c, or -1 if c is not in the alphabet. */
int sl_pretok_char_byte(uint32_t c);
/* order[i] = the byte GPT-2 gives id i (i < 256). */
void sl_pretok_byte_order(uint8_t order[256]);
/* Writes the UTF-8 spelling of bytes[0..n) in the byte-level alphabet to out
 * (at most 2 bytes per input byte); returns the length written. */
size_t sl_pretok_spell(const uint8_t *bytes, size_t n, char *out);

/* Largest position p in (0, n) at which text can be cut so that splitting
 * text[0..p) and text[p..n) separately yields exactly the pieces of text:
 * text[p-1] is a printable ASCII byte other than space and text[p] is a space
 * or a newline (no piece runs from a non-space character into whitespace).
 * Returns 0 when there is none. Used to stream files larger than memory. */
size_t sl_pretok_safe_cut(const uint8_t *text, size_t n);

#endif
