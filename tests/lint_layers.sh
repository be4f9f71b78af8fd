#!/usr/bin/env bash
# Enforces the layering in docs/architecture.md: shared/ includes only
# shared/; crypto/ includes shared/ and crypto/ (never the model); roles
# (server/, client/, audit/) never include each other. Prints offenders.
set -u
cd "$(dirname "$0")/.."
bad=0
check() { # dir, allowed-regex
  local hits
  hits=$(grep -nE '#include "(shared|crypto|server|client|audit)/' "$1"/*.[ch] 2>/dev/null \
         | grep -vE "#include \"($2)/" || true)
  if [ -n "$hits" ]; then echo "layering violation in $1/:"; echo "$hits"; bad=1; fi
}
check shared 'shared'
check crypto 'crypto|shared'
check server 'server|crypto|shared'
check client 'client|crypto|shared'
check audit 'audit|crypto|shared'
model=$(grep -nE '#include "shared/(gpt2|lora|model|tokenizer|train)' crypto/*.[ch] 2>/dev/null || true)
if [ -n "$model" ]; then echo "crypto/ must not see the model:"; echo "$model"; bad=1; fi
[ $bad -eq 0 ] && echo "layers: ok"
exit $bad
