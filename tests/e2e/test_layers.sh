# The source layout keeps its layering (docs/architecture.md).
. "$(dirname "$0")/lib.sh"
bash "$(dirname "$0")/../lint_layers.sh"
