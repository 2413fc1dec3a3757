#!/usr/bin/env bash
# Push benchmark: cold push (empty registry) and no-op push (everything already there)
# of one image, flense vs `skopeo copy` (and `buildah push` when installed), each
# against its own fresh Debian docker-registry on loopback. Then pull: cold (empty
# store) and warm (store has everything), flense pull vs skopeo copy to an OCI layout.
#
# Usage: bench/push.sh [SIZE_MIB] [RUNS]   (default: 200 MiB of content, 3 runs)
# Needs: docker-registry, skopeo; a release build of flense (built if missing).
set -euo pipefail

SIZE_MIB=${1:-200}
RUNS=${2:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
FLENSE=${FLENSE:-$HERE/target/release/flense}
[ -x "$FLENSE" ] || (cd "$HERE" && cargo build --release --quiet)

# Lowercase path: buildah names images pulled from an OCI layout after its path.
WORK=/tmp/flense-bench-$$
mkdir -p "$WORK"
cleanup() {
    for pidfile in "$WORK"/reg.*/pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a fresh registry (pid in its dir); prints its address.
start_registry() {
    local dir port
    dir="$WORK/reg.$(date +%s%N)"; mkdir -p "$dir"
    port=$(free_port)
    cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
  secret: bench
YML
    /usr/bin/docker-registry serve "$dir/config.yml" >/dev/null 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "127.0.0.1:$port"
}

stop_registry() {
    local pidfile
    pidfile=$(grep -l "addr: $1" "$WORK"/reg.*/config.yml | head -1 | xargs dirname)/pid
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Content: incompressible-ish (random) plus compressible (system files) halves.
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/data"
head -c $((SIZE_MIB / 2 * 1024 * 1024)) /dev/urandom > "$ROOTFS/data/random.bin"
tar -C /usr -cf - share lib 2>/dev/null | head -c $((SIZE_MIB / 2 * 1024 * 1024)) > "$ROOTFS/data/system.tar" || true
cp /bin/busybox "$ROOTFS/data/" 2>/dev/null || true
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .

STORE=$WORK/store
"$FLENSE" --root "$STORE" import --tag localhost/bench:1 "$WORK/rootfs.tar" >/dev/null
LAYER_BYTES=$(du -sb "$STORE/blobs" | cut -f1)
echo "image: ${SIZE_MIB} MiB of content, $((LAYER_BYTES / 1024 / 1024)) MiB of blobs; $RUNS runs each"
printf '%-14s %10s %10s\n' tool cold_s noop_s

bench_tool() {
    local name=$1; shift
    local cold=() noop=()
    for _ in $(seq "$RUNS"); do
        local reg t0 t1 t2
        reg=$(start_registry)
        t0=$(now); "$@" "$reg/bench/app:1" >/dev/null 2>&1; t1=$(now)
        "$@" "$reg/bench/app:1" >/dev/null 2>&1; t2=$(now)
        cold+=("$(elapsed "$t0" "$t1")"); noop+=("$(elapsed "$t1" "$t2")")
        stop_registry "$reg"
    done
    local median_cold median_noop
    median_cold=$(printf '%s\n' "${cold[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    median_noop=$(printf '%s\n' "${noop[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    printf '%-14s %10s %10s   (runs: cold %s; no-op %s)\n' "$name" "$median_cold" "$median_noop" "${cold[*]}" "${noop[*]}"
}

flense_push() { "$FLENSE" --root "$STORE" push localhost/bench:1 "$1"; }
skopeo_push() { skopeo copy --quiet --dest-tls-verify=false "oci:$STORE:localhost/bench:1" "docker://$1"; }
# buildah pushes from its own storage (kept under $WORK, vfs driver): imported first,
# outside the timing; it stores layers uncompressed, so each push compresses again.
BUILDAH=(buildah --root "$WORK/buildah-root" --runroot "$WORK/buildah-run" --storage-driver vfs)
buildah_push() { "${BUILDAH[@]}" push --tls-verify=false "$BUILDAH_ID" "docker://$1"; }

bench_tool flense flense_push
bench_tool skopeo skopeo_push
if command -v buildah >/dev/null \
    && BUILDAH_ID=$("${BUILDAH[@]}" pull --quiet "oci:$STORE:localhost/bench:1" 2>/dev/null); then
    bench_tool buildah buildah_push
fi

# Pull: one registry holding the image; cold = empty store, warm = pull again.
echo
printf '%-14s %10s %10s\n' tool cold_s warm_s
PULL_REG=$(start_registry)
flense_push "$PULL_REG/bench/app:1" >/dev/null 2>&1
bench_pull() {
    local name=$1; shift
    local cold=() warm=()
    for i in $(seq "$RUNS"); do
        local dest=$WORK/pull-$name-$i t0 t1 t2
        t0=$(now); "$@" "$dest" >/dev/null 2>&1; t1=$(now)
        "$@" "$dest" >/dev/null 2>&1; t2=$(now)
        cold+=("$(elapsed "$t0" "$t1")"); warm+=("$(elapsed "$t1" "$t2")")
        rm -rf "$dest"
    done
    printf '%-14s %10s %10s   (runs: cold %s; warm %s)\n' "$name" \
        "$(printf '%s\n' "${cold[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" \
        "$(printf '%s\n' "${warm[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" \
        "${cold[*]}" "${warm[*]}"
}
flense_pull() { "$FLENSE" --root "$1" pull "$PULL_REG/bench/app:1"; }
skopeo_pull() { skopeo copy --quiet --src-tls-verify=false "docker://$PULL_REG/bench/app:1" "oci:$1:app"; }
bench_pull flense flense_pull
bench_pull skopeo skopeo_pull
