/* libFuzzer target for the adapter_config.json reader: any input is refused
 * with a message or yields a configuration that passes validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "shared/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_peft_config c;
    sl_err err;
    if (sl_peft_config_parse(&c, (const char *)data, size, "fuzz", &err) != 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (sl_peft_config_validate(&c, &err) != 0)
        abort();
    for (int i = 1; i < c.nlayers; i++)
        if (c.layers[i - 1] >= c.layers[i])
            abort(); /* sorted and distinct */
    return 0;
}
