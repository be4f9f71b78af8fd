#include "server/runcfg.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/identity.h"
#include "shared/fsutil.h"
#include "shared/lora.h"

void sl_runcfg_defaults(sl_runcfg *c)
{
    memset(c, 0, sizeof *c);
    c->eval_tokens = 16384;
    c->rounds = 3;
    c->sample_rate = 1;
    c->min_sites = 2;
    c->wait_sites = 60;
    c->local_steps = 5;
    c->batch = 4;
    c->seq = 64;
    c->lr = 1e-3;
    c->lora_rank = 4;
    c->lora_alpha = 8;
    c->lora_targets = SL_LORA_C_ATTN;
    c->adapter_blocks = 2;
    c->clip = 1;
    c->noise_multiplier = 1;
    c->dropout = 0.3;
    c->epsilon = 8;
    c->delta = 1e-5;
    c->server_lr = -1; /* set from the optimizer after loading */
    c->train_timeout = 600;
    c->phase_timeout = 60;
    c->linger = 10;
    c->seed = 1;
}

typedef struct ctx {
    sl_runcfg *c;
    char dir[SL_RUNCFG_PATH_MAX];
    char bad[200];
    int seen_model, seen_sites;
} ctx;

static int u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *v == '-' || *end || errno || x < lo || x > hi)
        return 0;
    *out = (uint32_t)x;
    return 1;
}

static int dbl(const char *v, double lo, double hi, int open_lo, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < lo || x > hi || (open_lo && x == lo))
        return 0;
    *out = x;
    return 1;
}

static int path(ctx *x, char *dst, const char *v)
{
    int n = v[0] == '/' ? snprintf(dst, SL_RUNCFG_PATH_MAX, "%s", v)
                        : snprintf(dst, SL_RUNCFG_PATH_MAX, "%s/%s", x->dir, v);
    return v[0] && n > 0 && n < SL_RUNCFG_PATH_MAX;
}

static int sites(ctx *x, const char *v)
{
    sl_runcfg *c = x->c;
    c->nsites = 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n) {
            if (n > SL_RUNCFG_NAME_MAX || c->nsites == SL_RUNCFG_MAX_SITES)
                return 0;
            char name[SL_RUNCFG_NAME_MAX + 1];
            memcpy(name, p, n);
            name[n] = 0;
            if (sl_identity_check_name(name, NULL) || sl_runcfg_site(c, name) >= 0)
                return 0;
            memcpy(c->sites[c->nsites++], name, n + 1);
        }
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return c->nsites >= 2;
}

static int targets(const char *v, unsigned *out)
{
    unsigned m = 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n == 6 && !strncmp(p, "c_attn", 6))
            m |= SL_LORA_C_ATTN;
        else if (n == 11 && !strncmp(p, "attn.c_proj", 11))
            m |= SL_LORA_C_PROJ;
        else if (n == 8 && !strncmp(p, "mlp.c_fc", 8))
            m |= SL_LORA_MLP_FC;
        else if (n == 10 && !strncmp(p, "mlp.c_proj", 10))
            m |= SL_LORA_MLP_PROJ;
        else if (n == 3 && !strncmp(p, "all", 3))
            m |= SL_LORA_C_ATTN | SL_LORA_C_PROJ | SL_LORA_MLP_FC | SL_LORA_MLP_PROJ;
        else if (n)
            return 0;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    *out = m;
    return m != 0;
}

static int on_key(void *user, const char *section, const char *name, const char *v)
{
    ctx *x = user;
    sl_runcfg *c = x->c;
    if (!strcmp(section, "server"))
        return 1; /* the channel's section (crypto/channel checks it) */
    if (strcmp(section, "run") != 0) {
        snprintf(x->bad, sizeof x->bad, "unknown section [%.60s]", section);
        return 0;
    }
    int ok;
    if (!strcmp(name, "model"))
        ok = path(x, c->model, v), x->seen_model = 1;
    else if (!strcmp(name, "emulator"))
        ok = v[0] ? path(x, c->emulator, v) : (c->emulator[0] = 0, 1);
    else if (!strcmp(name, "eval_data"))
        ok = v[0] ? path(x, c->eval_data, v) : (c->eval_data[0] = 0, 1);
    else if (!strcmp(name, "eval_tokens"))
        ok = u32(v, 0, 1u << 30, &c->eval_tokens);
    else if (!strcmp(name, "sites"))
        ok = sites(x, v), x->seen_sites = 1;
    else if (!strcmp(name, "rounds"))
        ok = u32(v, 1, 1000000, &c->rounds);
    else if (!strcmp(name, "sample_rate"))
        ok = dbl(v, 0, 1, 1, &c->sample_rate);
    else if (!strcmp(name, "min_sites"))
        ok = u32(v, 2, SL_RUNCFG_MAX_SITES, &c->min_sites);
    else if (!strcmp(name, "wait_sites"))
        ok = u32(v, 0, 86400, &c->wait_sites);
    else if (!strcmp(name, "local_steps"))
        ok = u32(v, 1, 100000, &c->local_steps);
    else if (!strcmp(name, "batch"))
        ok = u32(v, 1, 4096, &c->batch);
    else if (!strcmp(name, "seq"))
        ok = u32(v, 1, 65536, &c->seq);
    else if (!strcmp(name, "lr"))
        ok = dbl(v, 0, 10, 1, &c->lr);
    else if (!strcmp(name, "lora_rank"))
        ok = u32(v, 1, SL_LORA_MAX_RANK, &c->lora_rank);
    else if (!strcmp(name, "lora_alpha"))
        ok = dbl(v, 0, 1e6, 1, &c->lora_alpha);
    else if (!strcmp(name, "lora_targets"))
        ok = targets(v, &c->lora_targets);
    else if (!strcmp(name, "adapter_blocks"))
        ok = u32(v, 1, 128, &c->adapter_blocks);
    else if (!strcmp(name, "clip"))
        ok = dbl(v, 0, 1e6, 1, &c->clip);
    else if (!strcmp(name, "noise_multiplier"))
        ok = dbl(v, 0, 1e6, 1, &c->noise_multiplier);
    else if (!strcmp(name, "noise"))
        ok = !strcmp(v, "distributed") ? (c->central = 0, 1)
             : !strcmp(v, "central")   ? (c->central = 1, 1)
                                       : 0;
    else if (!strcmp(name, "dropout"))
        ok = dbl(v, 0, 0.9, 0, &c->dropout);
    else if (!strcmp(name, "epsilon"))
        ok = dbl(v, 0, 1e9, 1, &c->epsilon);
    else if (!strcmp(name, "delta"))
        ok = dbl(v, 0, 0.5, 1, &c->delta);
    else if (!strcmp(name, "optimizer"))
        ok = !strcmp(v, "fedavg") ? (c->fedadam = 0, 1)
             : !strcmp(v, "fedadam") ? (c->fedadam = 1, 1)
                                     : 0;
    else if (!strcmp(name, "server_lr"))
        ok = dbl(v, 0, 100, 1, &c->server_lr);
    else if (!strcmp(name, "train_timeout"))
        ok = u32(v, 1, 86400, &c->train_timeout);
    else if (!strcmp(name, "phase_timeout"))
        ok = u32(v, 1, 86400, &c->phase_timeout);
    else if (!strcmp(name, "linger"))
        ok = u32(v, 0, 3600, &c->linger);
    else if (!strcmp(name, "seed")) {
        uint32_t s;
        ok = u32(v, 0, UINT32_MAX, &s);
        c->seed = s;
    } else {
        snprintf(x->bad, sizeof x->bad, "unknown key '%.60s' in section [run]", name);
        return 0;
    }
    if (!ok) {
        snprintf(x->bad, sizeof x->bad, "[run] %.40s: bad value '%.100s'", name, v);
        return 0;
    }
    return 1;
}

int sl_runcfg_load(const char *ini_path, sl_runcfg *cfg, sl_err *err)
{
    sl_runcfg *c = malloc(sizeof *c);
    if (!c)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    sl_runcfg_defaults(c);
    ctx x;
    memset(&x, 0, sizeof x);
    x.c = c;
    int rc = 0;
    if (snprintf(x.dir, sizeof x.dir, "%s", ini_path) >= (int)sizeof x.dir) {
        rc = sl_err_set(err, SL_ELIMIT, "%.80s...: path too long", ini_path);
        goto out;
    }
    char *slash = strrchr(x.dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(x.dir, ".");
    if (!sl_fs_exists(ini_path)) {
        rc = sl_err_set(err, SL_ENOTFOUND, "%s: no such configuration file", ini_path);
        goto out;
    }
    int line = ini_parse(ini_path, on_key, &x);
    if (line < 0) {
        rc = sl_err_errno(err, "%s: cannot read", ini_path);
        goto out;
    }
    if (line > 0) {
        rc = sl_err_set(err, SL_EINVAL, "%s:%d: %s", ini_path, line,
                        x.bad[0] ? x.bad : "syntax error");
        goto out;
    }
    if (!x.seen_model || !x.seen_sites) {
        rc = sl_err_set(err, SL_EINVAL, "%s: missing required key '[run] %s'", ini_path,
                        !x.seen_model ? "model" : "sites");
        goto out;
    }
    if (c->min_sites > c->nsites) {
        rc = sl_err_set(err, SL_EINVAL, "%s: [run] min_sites %u is more than the %u sites", ini_path,
                        c->min_sites, c->nsites);
        goto out;
    }
    if (c->server_lr < 0)
        c->server_lr = c->fedadam ? 1e-2 : 1;
    *cfg = *c;
out:
    free(c);
    return rc;
}

int sl_runcfg_site(const sl_runcfg *c, const char *name)
{
    for (uint32_t i = 0; i < c->nsites; i++)
        if (!strcmp(c->sites[i], name))
            return (int)i;
    return -1;
}
