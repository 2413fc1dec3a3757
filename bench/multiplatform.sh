#!/usr/bin/env bash
# Multi-platform builds (issue 15): the time of `flense build --platform
# linux/amd64,linux/arm64` against the amd64-only build of the same variant, both with
# a cold cache (a fresh store holding only the two-platform busybox base, imported
# before the clock starts). The variant's builder step writes `uname -m` and runs a
# busybox shell loop of LOOP iterations plus FILES small files, so the emulated arm64
# step has some work to show QEMU's cost (no shell variables: the builder command is
# expanded as Blubber does); the arm64 build runs in parallel with the
# amd64 one (one per core). Runs alternate (amd64-only, both, amd64-only, ...) and the
# table shows the median and the max of ROUNDS runs of each, with the load average:
# other work on the machine makes the numbers noisy.
#
# Usage: bench/multiplatform.sh   (ROUNDS=5, LOOP=20000, FILES=500; FLENSE=path/to/flense
#        skips building it). Needs qemu-aarch64 registered with binfmt_misc (see
#        docs/multi-platform.md) and the arm64 busybox fixture (built here when missing).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${ROUNDS:-5}"
loop="${LOOP:-20000}"
files="${FILES:-500}"

flense="${FLENSE:-}"
if [ -z "$flense" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin flense
  flense="${CARGO_TARGET_DIR:-$here/target}/release/flense"
fi
work="$(mktemp -d "${BENCH_DIR:-/var/tmp}/flense-multiplatform.XXXXXX")"
cleanup() { chmod -R u+rwx "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "multiplatform.sh: $*" >&2; }

amd64_tar="$("$here/fixtures/base-images/build.sh" busybox)"
arm64_tar="$("$here/fixtures/base-images/build.sh" arm64-busybox)"
mkdir -p "$work/project/.pipeline"
cat >"$work/project/.pipeline/blubber.yaml" <<EOF
version: v4
base: localhost/busybox:multi
variants:
  bench:
    builder:
      command: [sh, -c, 'uname -m > arch; seq $loop | while read i; do :; done; mkdir f; cd f; seq $files | xargs touch']
    entrypoint: [cat, arch]
EOF

# A fresh store with the two-platform base (untimed).
fresh_store() {
  local store="$1"
  rm -rf "$store"
  "$flense" --root "$store" import --tag localhost/busybox:amd64 "$amd64_tar" >/dev/null
  "$flense" --root "$store" import --platform linux/arm64 --tag localhost/busybox:arm64 "$arm64_tar" >/dev/null
  "$flense" --root "$store" manifest create localhost/busybox:multi \
    localhost/busybox:amd64 localhost/busybox:arm64 >/dev/null
}

# Appends the wall time of one cold build with "$@" extra arguments to file $1.
timed_build() {
  local out="$1"; shift
  fresh_store "$work/store"
  sync
  local start end
  start="$(date +%s.%N)"
  "$flense" --root "$work/store" build bench -q -C "$work/project" "$@" >/dev/null
  end="$(date +%s.%N)"
  echo "$end - $start" | bc >>"$out"
}

: >"$work/amd64" ; : >"$work/both"
for round in $(seq "$rounds"); do
  timed_build "$work/amd64"
  timed_build "$work/both" --platform linux/amd64,linux/arm64
  log "round $round: amd64 $(tail -1 "$work/amd64")s, both $(tail -1 "$work/both")s (load $(cut -d' ' -f1 /proc/loadavg))"
done
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "median %6.2fs  max %6.2fs", v[int((NR + 1) / 2)], v[NR] }'; }
printf 'cold builds, %s rounds, builder: uname + %s-iteration shell loop + %s files, %s cores\n' \
  "$rounds" "$loop" "$files" "$(nproc)"
printf '%-28s %s\n' "amd64 only" "$(stats "$work/amd64")"
printf '%-28s %s\n' "linux/amd64,linux/arm64" "$(stats "$work/both")"
