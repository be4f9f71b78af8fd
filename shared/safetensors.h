/* shared/safetensors.h - the Hugging Face safetensors format: model weights,
 * emulators and PEFT adapters are exchanged in it (docs/formats.md).
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string -> string), then the
 * byte buffer the offsets index. Reading maps the file read-only and
 * validates the whole header before returning (what the reference
 * implementation, huggingface/safetensors, refuses we refuse too): the
 * tensors' byte ranges must tile the buffer exactly, with no hole, no
 * overlap and nothing left over. Writing streams the data through
 * shared/atomicfile, so files larger than memory can be written and a crash
 * never leaves a torn file.
 *
 * Ownership: an sl_st_file owns its mapping, names and metadata; tensor
 * views (names, data) stay valid until sl_st_close. Data pointers are only
 * as aligned as the file makes them (files we write align every tensor to
 * its element size; foreign files may not): read elements with memcpy or
 * sl_st_read_f32. The file must not be truncated while it is open (the
 * mapping would fault). Thread-safety: an open file is immutable, so any
 * number of threads may read it concurrently; open/close are not
 * synchronised with readers. */
#ifndef SL_SAFETENSORS_H
#define SL_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

typedef enum sl_st_dtype { SL_ST_F32, SL_ST_F16, SL_ST_BF16, SL_ST_F64, SL_ST_I64, SL_ST_I32,
                           SL_ST_I16, SL_ST_I8, SL_ST_U8, SL_ST_BOOL } sl_st_dtype;
#define SL_ST_NDTYPES 10
#define SL_ST_MAX_DIMS 8
/* Largest JSON header accepted: MAX_HEADER_SIZE of the reference
 * implementation (safetensors/src/tensor.rs, 100_000_000 bytes). */
#define SL_ST_MAX_HEADER 100000000u
/* Most tensors one file may declare (GPT-2 XL has 582); bounds the index
 * we allocate for a hostile header. */
#define SL_ST_MAX_TENSORS 65536u
/* Longest tensor name or metadata key/value, in bytes. */
#define SL_ST_MAX_NAME 1024u

typedef struct sl_st_tensor {
    const char *name;           /* owned by the file object */
    sl_st_dtype dtype;
    int ndim;                   /* 0 (a scalar) .. SL_ST_MAX_DIMS */
    int64_t shape[SL_ST_MAX_DIMS];
    size_t nelem;               /* product of shape (1 for a scalar) */
    const uint8_t *data;        /* borrowed view into the mmap, nbytes long */
    size_t nbytes;              /* nelem * sl_st_dtype_size(dtype) */
} sl_st_tensor;
typedef struct sl_st_file sl_st_file;

/* Maps path read-only and validates it completely. On failure *out is
 * untouched and the message names the file, the tensor or field and the bad
 * value; codes: SL_ENOTFOUND/SL_EIO (file), SL_EFORMAT (content),
 * SL_ELIMIT (a named limit), SL_ENOMEM. */
int sl_st_open(sl_st_file **out, const char *path, sl_err *err);
/* The same over a caller's buffer (borrowed: it must outlive the file
 * object). `what` names the source in messages. Used by the fuzz target and
 * for files received over the network. */
int sl_st_open_mem(sl_st_file **out, const void *buf, size_t len, const char *what,
                   sl_err *err);
void sl_st_close(sl_st_file *f); /* accepts NULL */
size_t sl_st_count(const sl_st_file *f);
const sl_st_tensor *sl_st_at(const sl_st_file *f, size_t i);          /* in header order */
const sl_st_tensor *sl_st_find(const sl_st_file *f, const char *name); /* NULL if absent */
const char *sl_st_meta(const sl_st_file *f, const char *key); /* __metadata__ value or NULL */
size_t sl_st_meta_count(const sl_st_file *f);
/* i-th metadata pair in header order; 0, or SL_EINVAL if i is out of range. */
int sl_st_meta_at(const sl_st_file *f, size_t i, const char **key, const char **value);

/* Converts any float dtype (F32/F16/BF16/F64) to float32; n must equal
 * t->nelem. F64 values beyond float range become +-Inf (round to nearest
 * even). Integer dtypes are refused (SL_EINVAL). */
int sl_st_read_f32(const sl_st_tensor *t, float *out, size_t n, sl_err *err);

/* Writing: data is float32, converted to dtype (F32, F16 or BF16,
 * round-to-nearest-even) on write. */
typedef struct sl_st_entry {
    const char *name; sl_st_dtype dtype; int ndim; int64_t shape[SL_ST_MAX_DIMS];
    const float *data;
} sl_st_entry;
/* Atomic (temporary + fsync + rename, shared/atomicfile) and streaming (the
 * data is converted in small blocks, never the whole file in memory).
 * meta_kv holds nmeta_pairs key/value pairs (key0, value0, key1, ...; may be
 * NULL/0). Layout as the reference writer produces it: "__metadata__" first,
 * then tensors ordered by descending dtype (F32, BF16, F16) and by name
 * within a dtype, compact JSON, header padded with spaces to a multiple of
 * 8, so each tensor's data is aligned to its element size. Names must be
 * unique, non-empty, valid UTF-8 and not "__metadata__". On failure path is
 * untouched. The file is created with mode 0644. */
int sl_st_write(const char *path, const sl_st_entry *e, size_t n,
                const char *const *meta_kv, size_t nmeta_pairs, sl_err *err);

/* Name as written in headers ("F32", "BF16", ...) and element size in bytes. */
const char *sl_st_dtype_name(sl_st_dtype d);
size_t sl_st_dtype_size(sl_st_dtype d);

/* Conversion helpers (exposed for the engine and tests). f32 -> f16/bf16
 * round to nearest, ties to even; overflow gives Inf; NaN stays NaN (quiet,
 * sign and leading payload bits kept); f16 subnormals are produced and read
 * exactly. */
float sl_f16_to_f32(uint16_t h);
uint16_t sl_f32_to_f16(float f);
float sl_bf16_to_f32(uint16_t h);
uint16_t sl_f32_to_bf16(float f);

#endif
