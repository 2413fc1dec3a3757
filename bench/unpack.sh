#!/usr/bin/env bash
# Layer unpack benchmark: times `flense unpack` of a one-layer image (default: the
# nodejs-devel fixture base, 156 MB gzip / 454 MB tar / 38k entries) against
# `gzip -dc BLOB | tar -x` and `tar -xf` of the plain tar, on the same disk, and prints
# wall/user/sys, MiB/s of uncompressed tar and entries/s for each (median of RUNS).
#
# Usage: bench/unpack.sh [IMAGE_TAR] [RUNS]    (IMAGE_TAR: an image tarball as made by
#        fixtures/base-images/build.sh; FLENSE=path/to/flense to skip building;
#        BENCH_DIR=dir for the scratch space, default /var/tmp; SETTLE=seconds to wait
#        after the import, default 65)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
image_tar="${1:-}"
runs="${2:-3}"
if [ -z "$image_tar" ]; then
  image_tar="$("$here/fixtures/base-images/build.sh" nodejs-devel)"
fi
flense="${FLENSE:-}"
if [ -z "$flense" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin flense
  flense="$here/target/release/flense"
fi
work="$(mktemp -d "${BENCH_DIR:-/var/tmp}/flense-unpack.XXXXXX")"
cleanup() { chmod -R u+rwx "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

store="$work/store"
"$flense" --root "$store" import --no-unpack "$image_tar" --tag bench:1 >/dev/null
blob="$(ls -S "$store"/blobs/sha256/* | head -1)"
gzip -dc "$blob" >"$work/plain.tar"
tar_bytes="$(stat -c %s "$work/plain.tar")"
entries="$(tar -tf "$work/plain.tar" | wc -l)"
# The import deleted its spooled copy of the rootfs: let ext4 forget those inodes
# (see below) before measuring.
sync
sleep "${SETTLE:-65}"
printf 'layer: %s gzip, %s tar, %s entries; %s runs (median)\n' \
  "$(stat -c %s "$blob")" "$tar_bytes" "$entries" "$runs"

# Runs "$@" RUNS times after `$prepare` (and a sync, so earlier runs' writeback is done), prints "wall user sys" of the median wall run.
measure() {
  local prepare="$1"; shift
  local out="$work/times"
  : >"$out"
  for _ in $(seq "$runs"); do
    eval "$prepare"
    sync
    /usr/bin/time -f '%e %U %S' -o "$work/one" "$@" >/dev/null
    cat "$work/one" >>"$out"
  done
  sort -n "$out" | sed -n "$(( (runs + 1) / 2 ))p"
}

report() {
  local name="$1" wall user sys
  read -r wall user sys
  awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v b="$tar_bytes" -v e="$entries" \
    'BEGIN { printf "%-22s wall %6.2fs  user %5.2fs  sys %5.2fs  %7.1f MiB/s  %8.0f entries/s\n",
             n, w, u, s, b / 1048576 / w, e / w }'
}

# Trees of earlier runs are moved aside, not deleted, until the end: for about a minute
# after a big delete, ext4 scans for recently freed inodes (`recently_deleted`) on
# every inode allocation, which adds seconds of system time to whatever runs then.
clear_layers='mv "$store"/layers/* "$(mktemp -d "$work/old.XXXXXX")"/ 2>/dev/null || true'
clear_out='[ -d "$work/out" ] && mv "$work/out" "$(mktemp -d "$work/old.XXXXXX")"/; mkdir "$work/out"'
measure "$clear_layers" "$flense" --root "$store" unpack bench:1 | report "flense unpack"
measure "$clear_out" sh -c "gzip -dc '$blob' | tar -x -C '$work/out'" | report "gzip -dc | tar -x"
measure "$clear_out" tar -xf "$work/plain.tar" -C "$work/out" | report "tar -xf plain.tar"
