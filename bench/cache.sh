#!/usr/bin/env bash
# Shared build cache benchmark (issue 11): a fresh CI runner (empty store) building the
# Node sample (examples/node-service, nodejs-devel fixture base) with a warm registry
# cache, four ways:
#   flense   `flense build VARIANT --cache-from REG/flense-cache`   (fresh store)
#   +to      the same with `--cache-to REG/flense-cache` too, as a CI job would pass
#   buildah  `buildah build --layers --cache-from REG/buildah-cache --cache-to REG/...`
#            (fresh storage; the Dockerfile that `flense dockerfile VARIANT` renders)
#   pull     `flense pull REG/final/node-service:VARIANT` of the finished image
#            (fresh store)
# for the `test` variant and an `apt-npm` variant (apt `jq` + the npm install; apt
# fetches from deb.debian.org). Each cache is made warm beforehand by one cold build
# of the same tool with `--cache-to` (flense's also pushes the finished image for
# `pull`). The base image is served by the same local registry (a loopback
# docker-registry on its own port) to all of them, so each measured run starts from
# empty storage and fetches everything it needs from that registry; each run is
# preceded by `sync` and, as root, a drop of the page caches (DROP_CACHES=0 skips it).
# The tools alternate (the order rotates every round); the table shows the median of
# ROUNDS runs and the ratios flense/buildah and flense/pull (issue 11's targets: at
# most 0.5x and 1.5x), and +to/pull. Each flense run checks that no step ran and that
# the image digest is the warm build's. (buildah 1.28 hits its remote cache only up to
# the first ARG step here and runs the rest, npm ci included, again.)
#
# Usage: bench/cache.sh [VARIANT...]   (default: test apt-npm; ROUNDS=5, DROP_CACHES=1;
#        FLENSE=path/to/flense skips building it)
# Needs: root, buildah (apt-get install buildah), docker-registry (apt-get install
#        docker-registry), bc, curl, python3; builds flense --release unless FLENSE is set.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${ROUNDS:-5}"
drop="${DROP_CACHES:-1}"
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(test apt-npm)
wmf_base="docker-registry.wikimedia.org/nodejs20-devel"

for tool in buildah docker-registry bc; do
  command -v "$tool" >/dev/null || { echo "cache.sh: needs $tool (apt-get install ${tool})" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "cache.sh: run as root (buildah storage, drop_caches)" >&2; exit 2; }

flense="${FLENSE:-}"
if [ -z "$flense" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin flense
  flense="${CARGO_TARGET_DIR:-$here/target}/release/flense"
fi
work="$(mktemp -d /var/tmp/flense-cache-bench.XXXXXX)"
registry_pid=""
# Unmounts what buildah left mounted below DIR, then deletes it.
remove_buildah_storage() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  buildah --root "$dir/root" --runroot "$dir/run" rm --all >/dev/null 2>&1 || true
  buildah --root "$dir/root" --runroot "$dir/run" rmi --all --force >/dev/null 2>&1 || true
  { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf "$dir"
}
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  for d in "$work"/buildah-*; do remove_buildah_storage "$d"; done
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }
log() { echo "cache.sh: $*" >&2; }

# The registry: base image, both caches and the finished images.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
reg="127.0.0.1:$port"
mkdir -p "$work/registry"
cat > "$work/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: $reg}
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
cat > "$work/registries.toml" <<EOF
[[rewrite]]
from = "$wmf_base"
to = "$reg/nodejs-devel"
EOF
export FLENSE_REGISTRIES_CONFIG="$work/registries.toml"
F=("$flense")

base_tar="$("$here/fixtures/base-images/build.sh" nodejs-devel)"
"${F[@]}" --root "$work/setup" import --no-unpack "$base_tar" --tag "$reg/nodejs-devel:latest" >/dev/null
"${F[@]}" --root "$work/setup" push "$reg/nodejs-devel:latest" "$reg/nodejs-devel:latest" >/dev/null
rm -rf "$work/setup"

# The project, with an apt + npm variant added.
project="$work/node-service"
cp -a "$here/examples/node-service" "$project"
rm -rf "$project/node_modules"
cat >> "$project/.pipeline/blubber.yaml" <<'EOF'
  apt-npm:
    includes: [build]
    apt: {packages: [jq]}
    entrypoint: [npm, test]
EOF
for v in "${variants[@]}"; do
  "$flense" dockerfile "$v" -f "$project/.pipeline/blubber.yaml" \
    | sed -E "s#^FROM $wmf_base(:latest)?( |\$)#FROM $reg/nodejs-devel:latest\\2#" \
    > "$project/Dockerfile.$v"
done
export BUILDAH_ISOLATION=chroot # no OCI runtime or cgroups needed (crun refuses hybrid cgroups here)
buildah_cmd() { # storage-dir args...
  local dir="$1"; shift
  buildah --root "$dir/root" --runroot "$dir/run" --storage-driver overlay "$@"
}

# Warm the caches: one cold build per tool and variant, in storage thrown away after.
declare -A DIGEST
for v in "${variants[@]}"; do
  log "warming the caches: $v"
  DIGEST[$v]="$("${F[@]}" --root "$work/warm" build "$v" -q -C "$project" \
    --cache-to "$reg/flense-cache" --push "$reg/final/node-service:$v")"
  buildah_cmd "$work/buildah-warm" build -q --layers --tls-verify=false \
    --cache-to "$reg/buildah-cache" -f "$project/Dockerfile.$v" -t "node-service:$v" "$project" >/dev/null
done
rm -rf "$work/warm"
remove_buildah_storage "$work/buildah-warm"

# One measured run of TOOL on VARIANT from empty storage; prints the seconds.
prepare() {
  rm -rf "$work/store"
  remove_buildah_storage "$work/buildah-run"
  sync
  if [ "$drop" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}
run_flense() { # variant [more build options]
  "${F[@]}" --root "$work/store" build "$1" --json -C "$project" \
    --cache-from "$reg/flense-cache" "${@:2}" > "$work/events.json"
  check_flense "$1"
}
run_flense_to() { run_flense "$1" --cache-to "$reg/flense-cache"; }
check_flense() {
  local v="$1" ran digest
  ran="$(grep -c '"status":"ran"' "$work/events.json" || true)"
  digest="$(grep '"event":"image"' "$work/events.json" | tail -1 | sed 's/.*"digest":"\([^"]*\)".*/\1/')"
  [ "$ran" = 0 ] || log "WARNING: flense ran $ran step(s) of $v despite the warm cache"
  [ "$digest" = "${DIGEST[$v]}" ] || log "WARNING: flense built $v as $digest, the warm build as ${DIGEST[$v]}"
}
run_buildah() {
  local v="$1"
  buildah_cmd "$work/buildah-run" build -q --layers --tls-verify=false \
    --cache-from "$reg/buildah-cache" --cache-to "$reg/buildah-cache" \
    -f "$project/Dockerfile.$v" -t "node-service:$v" "$project" >/dev/null
}
run_pull() {
  "${F[@]}" --root "$work/store" pull "$reg/final/node-service:$1" >/dev/null
}
declare -A T
tools=(flense flense_to buildah pull)
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    for i in 0 1 2 3; do
      tool="${tools[$(( (i + r) % 4 ))]}"
      prepare
      s="$(now)"
      "run_$tool" "$v"
      t="$(elapsed "$s")"
      T[$v,$tool]+="$t "
      log "round $r $v $tool ${t}s (load $(cut -d' ' -f1 /proc/loadavg))"
    done
  done
done
prepare

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median of $rounds round(s); drop_caches=$drop; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %9s %9s %9s %9s %15s %12s %9s\n' \
  variant flense +to buildah pull flense/buildah flense/pull +to/pull
for v in "${variants[@]}"; do
  f="$(echo "${T[$v,flense]}" | median)"
  ft="$(echo "${T[$v,flense_to]}" | median)"
  b="$(echo "${T[$v,buildah]}" | median)"
  p="$(echo "${T[$v,pull]}" | median)"
  printf '%-9s %8.2fs %8.2fs %8.2fs %8.2fs %14.2fx %11.2fx %8.2fx\n' "$v" "$f" "$ft" "$b" "$p" \
    "$(echo "$f / $b" | bc -l)" "$(echo "$f / $p" | bc -l)" "$(echo "$ft / $p" | bc -l)"
done
echo "(targets: flense/buildah <= 0.5, flense/pull <= 1.5)"
