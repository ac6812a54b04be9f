#!/usr/bin/env bash
# Installs the OpenTelemetry JavaScript SDK of package.json (exact versions) into DIR with
# npm, once: a DIR already holding this package.json's install is reused (the CI cache).
#   tests/otel_sdk/install.sh DIR
# Exit 0: DIR/node_modules is ready and DIR/emit_spans.cjs and DIR/emit_metrics.cjs are
# there; 77: node or npm is missing or the registry cannot be reached (the caller skips,
# saying why); else failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
command -v node >/dev/null || { echo "node is not installed"; exit 77; }
command -v npm >/dev/null || { echo "npm is not installed"; exit 77; }
mkdir -p "$dir" || exit 1
cp "$here/emit_spans.cjs" "$here/emit_metrics.cjs" "$dir/" || exit 1
if cmp -s "$here/package.json" "$dir/package.json" && [ -f "$dir/.installed" ]; then
  exit 0
fi
rm -rf "$dir/node_modules" "$dir/.installed"
cp "$here/package.json" "$dir/" || exit 1
if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --no-package-lock \
    --ignore-scripts >npm.log 2>&1); then
  if grep -qiE 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|network|fetch failed' "$dir/npm.log"; then
    echo "the npm registry cannot be reached: $(grep -m1 -iE 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|network|fetch failed' "$dir/npm.log")"
    exit 77
  fi
  cat "$dir/npm.log" >&2
  exit 1
fi
touch "$dir/.installed"
