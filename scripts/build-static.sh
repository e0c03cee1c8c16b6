#!/usr/bin/env bash
# Builds a static `hookgate` binary (glibc, crt-static): the Dockerfile's build stage and CI both
# run this, so the image's build is checked where no container engine exists.
# Usage: scripts/build-static.sh OUTPUT_PATH
set -euo pipefail
out=${1:?usage: build-static.sh OUTPUT_PATH}
case "$(uname -m)" in
  x86_64) target=x86_64-unknown-linux-gnu ;;
  aarch64 | arm64) target=aarch64-unknown-linux-gnu ;;
  *) echo "unsupported architecture: $(uname -m)" >&2; exit 2 ;;
esac
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" --bin hookgate
mkdir -p "$(dirname "$out")"
cp "target/$target/release/hookgate" "$out"
if ldd "$out" 2>&1 | grep -q '=>'; then
  echo "error: $out is dynamically linked" >&2
  ldd "$out" >&2
  exit 1
fi
echo "built $out ($(du -h "$out" | cut -f1), static)"
