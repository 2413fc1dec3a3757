#!/usr/bin/env bash
# Start-up cost of a flense sandbox: `flense run --image busybox -- true` against
# `chroot DIR true` (the floor: no namespaces, no mounts) and `podman run` when podman is
# installed and works. Uses hyperfine when installed (apt-get install hyperfine), else a
# plain timing loop. Run as root; with BENCH_USER=<name> the flense runs are repeated as
# that unprivileged user (subuid or single mode, see -v output).
#
# Usage: bench/startup.sh [FLENSE_BIN]     (default: target/release/flense, built if missing)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$repo/target/release/flense}"
runs="${RUNS:-50}"
if [ ! -x "$bin" ]; then
  cargo build --release --bin flense --manifest-path "$repo/Cargo.toml" >&2
fi
work="$(mktemp -d /tmp/flense-bench-XXXXXX)"
chmod 755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

tar="$("$repo/fixtures/base-images/build.sh" busybox)"
cp "$tar" "$work/busybox.tar"
chmod 644 "$work/busybox.tar"
rootfs="$work/rootfs"
mkdir "$rootfs"
tar -xf "$tar" -C "$rootfs"
store="$work/store"
"$bin" --root "$store" import "$work/busybox.tar" --tag localhost/busybox:latest >/dev/null
flense_cmd="$bin --root $store run --image localhost/busybox -- true"
$flense_cmd   # unpacks the layers once
"$bin" --root "$store" -v run --image localhost/busybox -- true 2>&1 | grep -i "mode" >&2 || true

cmds=("chroot $rootfs /bin/true" "$flense_cmd")
names=("chroot" "flense run (root)")

if [ -n "${BENCH_USER:-}" ]; then
  ustore="$work/ustore"
  mkdir "$ustore"
  chown -R "$BENCH_USER" "$ustore"
  as_user="setpriv --reuid=$BENCH_USER --regid=$(id -g "$BENCH_USER") --init-groups env -i PATH=/usr/bin:/bin HOME=/tmp"
  $as_user "$bin" --root "$ustore" import "$work/busybox.tar" --tag localhost/busybox:latest >/dev/null
  $as_user "$bin" --root "$ustore" run --image localhost/busybox -- true
  cmds+=("$as_user $bin --root $ustore run --image localhost/busybox -- true")
  names+=("flense run ($BENCH_USER)")
fi

if command -v podman >/dev/null; then
  if podman import "$work/busybox.tar" localhost/flense-bench-busybox >/dev/null 2>&1 &&
     podman run --rm --network host localhost/flense-bench-busybox true >/dev/null 2>&1; then
    cmds+=("podman run --rm --network host localhost/flense-bench-busybox true")
    names+=("podman run")
  else
    echo "podman is installed but cannot run here; skipped" >&2
  fi
fi

if command -v hyperfine >/dev/null; then
  args=()
  for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
  hyperfine -N --warmup 5 --runs "$runs" "${args[@]}"
else
  for i in "${!cmds[@]}"; do
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do ${cmds[$i]} >/dev/null; done
    end=$(date +%s%N)
    printf '%-24s %8.2f ms mean over %d runs\n' "${names[$i]}" \
      "$(echo "($end - $start) / $runs / 1000000" | bc -l)" "$runs"
  done
fi
podman rmi localhost/flense-bench-busybox >/dev/null 2>&1 || true
