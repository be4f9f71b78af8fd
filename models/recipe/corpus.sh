#!/usr/bin/env bash
# models/recipe/corpus.sh OUTDIR - the text behind sealora's base model and
# demo (models/recipe/README.md). Installs the Debian text packages it needs
# (as root; otherwise prints the apt-get line and stops), then writes
#   OUTDIR/general.txt        general pretraining mix, documents separated by
#                             <|endoftext|>
#   OUTDIR/domain/heldout/    Linux kernel docs nobody trains on (domain test set)
#   OUTDIR/domain/site-a/     networking/, driver-api/
#   OUTDIR/domain/site-b/     admin-guide/, filesystems/
#   OUTDIR/domain/site-c/     everything else (userspace-api/, core-api/, ...)
#   OUTDIR/SHA256SUMS         digests of the outputs
# Resumable: a finished output is kept (delete it to redo it); each is
# written to a temporary name and renamed when complete. DOMAIN_ONLY=1 skips
# the general mix (the demo needs only the domain).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: corpus.sh OUTDIR}
mkdir -p "$out"

general_pkgs="bible-kjv bible-kjv-text dict-gcide dict-devil fortunes wordnet-base gnu-standards
  debian-reference-en git-doc vim-runtime manpages manpages-dev man-db groff-base bsdextrautils"
domain_pkgs="linux-doc-6.1"
tool_pkgs="python3"
pkgs="$domain_pkgs $tool_pkgs"
[ "${DOMAIN_ONLY:-0}" = 1 ] || pkgs="$pkgs $general_pkgs"

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "corpus: run as root: apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
  echo "corpus: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi

if [ ! -d "$out/domain" ]; then
  python3 "$here/corpus_extract.py" domain "$out/domain"
else
  echo "corpus: $out/domain exists, kept" >&2
fi
if [ "${DOMAIN_ONLY:-0}" != 1 ]; then
  if [ ! -s "$out/general.txt" ]; then
    python3 "$here/corpus_extract.py" general "$out/general.txt"
  else
    echo "corpus: $out/general.txt exists, kept" >&2
  fi
fi

(cd "$out" && find . -type f ! -name SHA256SUMS ! -name '*.tmp' ! -name '*.tokcache' -print0 \
   | LC_ALL=C sort -z | xargs -0 sha256sum > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
echo "corpus: done; $(wc -l < "$out/SHA256SUMS") files listed in $out/SHA256SUMS" >&2
