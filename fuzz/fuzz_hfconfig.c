/* libFuzzer target for the config.json reader: any input is refused with a
 * message or yields a configuration that passes validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "shared/hfconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_gpt2_config c;
    sl_err err;
    if (sl_hfconfig_parse(&c, (const char *)data, size, "fuzz", &err) != 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (sl_hfconfig_validate(&c, &err) != 0)
        abort();
    return 0;
}
