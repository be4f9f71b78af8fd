/* crypto/emupkg.h - the signed emulator package the model owner hands to
 * sites (offsite tuning, docs/offsite.md): a folder holding the emulator as
 * a normal model directory (config.json, model.safetensors, tokenizer files)
 * plus manifest.json, which records what the emulator is (base model digest,
 * layer map, adapter blocks, drop settings, distillation recipe) and the
 * SHA-256 of every other file, and manifest.sig, a detached Ed25519
 * signature (libsodium crypto_sign_detached) over manifest.json's exact
 * bytes. Format: docs/formats.md, "Emulator package".
 *
 * This module sees files and metadata only, never the model: the layer map
 * is a list of integers to it. Verification checks the signature before it
 * parses a single byte of the manifest, then the manifest's fields, then
 * that the folder holds exactly the listed files with the listed digests.
 * Every refusal names the file or field and the bad value.
 *
 * Ownership: sl_emumeta is plain caller storage. The secret key is
 * borrowed and never copied or printed. Thread-safe (no shared state). */
#ifndef SL_EMUPKG_H
#define SL_EMUPKG_H
#include <stddef.h>
#include <stdint.h>

#include "shared/emumeta.h"
#include "shared/err.h"

#define SL_EMUPKG_SIG_BYTES 64 /* manifest.sig: the raw Ed25519 signature, no framing */

/* Lists every regular file of dir other than the manifest and signature,
 * digests it, writes dir/manifest.json from meta (its files[] ignored and
 * recomputed) and dir/manifest.sig signed with sk (libsodium's 64-byte
 * Ed25519 secret key), each atomically. Refuses sub-folders and names
 * outside [A-Za-z0-9._-]. files_out (may be NULL) receives the recorded
 * list (nfiles and files[] filled). */
int sl_emupkg_sign(const char *dir, const sl_emumeta *meta, const uint8_t sk[64],
                   sl_emumeta *files_out, sl_err *err);

/* Verifies dir against the signer's public key pk: signature over
 * manifest.json (SL_ECRYPTO), manifest fields (SL_EFORMAT naming the
 * field), expected_base (hex digest, may be NULL) equal to the manifest's
 * base digest (SL_EINVAL naming both), the folder's files exactly the listed
 * ones (SL_ENOTFOUND for a missing one, SL_EFORMAT for an unlisted one) with
 * the listed sizes and digests (SL_ECRYPTO naming the file and both
 * digests). meta (may be NULL) is filled only on success. */
int sl_emupkg_verify(const char *dir, const uint8_t pk[32], const char *expected_base,
                     sl_emumeta *meta, sl_err *err);

#endif
