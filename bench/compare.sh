#!/usr/bin/env bash
# Compares flense with buildah on the Node sample (examples/node-service, nodejs-devel
# fixture base): cold build, no-op rebuild, one-file change, run of the test entrypoint,
# and push to a local registry. buildah builds the Dockerfile that `flense dockerfile`
# renders for the same variant. Prints a table with the buildah/flense ratio.
#
# Usage: bench/compare.sh [VARIANT]        (default: test; needs root, buildah,
#                                           docker-registry; builds flense --release)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
variant="${1:-test}"
wmf_base="docker-registry.wikimedia.org/nodejs20-devel:latest"

for tool in buildah docker-registry; do
  command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool (apt-get install ${tool})" >&2; exit 2; }
done

cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin flense
flense="$here/target/release/flense"
work="$(mktemp -d /var/tmp/flense-compare.XXXXXX)"
registry_pid=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  buildah --root "$work/buildah" --runroot "$work/buildah-run" rm --all >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }
declare -A T

# Base image for both tools.
base_tar="$("$here/fixtures/base-images/build.sh" nodejs-devel)"
store="$work/store"
"$flense" --root "$store" import "$base_tar" --tag "$wmf_base" >/dev/null
"$flense" --root "$store" save "$wmf_base" -o "$work/base.oci.tar"
# chroot isolation: no OCI runtime or cgroups needed (crun refuses hybrid cgroups here).
export BUILDAH_ISOLATION=chroot
B=(buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay)
"${B[@]}" pull -q "oci-archive:$work/base.oci.tar" >/dev/null
base_id="$("${B[@]}" images -q | head -1)"
"${B[@]}" tag "$base_id" "localhost/nodejs20-devel:latest"

# Two copies of the project, one per tool (edits happen in both).
for t in flense buildah; do
  mkdir -p "$work/$t"
  cp -a "$here/examples/node-service" "$work/$t/node-service"
  rm -rf "$work/$t/node-service/node_modules"
done
# A second variant whose build step is local work (no network): 3000 small files and
# 20 MB of text, so the tools' own overhead shows without npm's download time.
for t in flense buildah; do
  cat >> "$work/$t/node-service/.pipeline/blubber.yaml" <<'EOF'
  local:
    builder:
      script: |
        #!/bin/sh
        set -e
        mkdir -p gen
        i=0
        while [ $i -lt 3000 ]; do echo "file $i" > gen/f$i; i=$((i+1)); done
        seq 1 2600000 > gen/numbers
    copies: [local]
    entrypoint: [ls, gen]
EOF
done
for v in "$variant" local; do
  file="Dockerfile"; [ "$v" = local ] && file="Dockerfile.local"
  "$flense" dockerfile "$v" -f "$work/buildah/node-service/.pipeline/blubber.yaml" \
    | sed "s#^FROM $wmf_base#FROM localhost/nodejs20-devel:latest#; s#^FROM docker-registry.wikimedia.org/nodejs20-devel #FROM localhost/nodejs20-devel:latest #" \
    > "$work/buildah/node-service/$file"
done
# buildah 1.28 (Debian bookworm) has no RUN heredocs: run the same script from a bind mount.
sed -n '/^        #!\/bin\/sh/,/^        seq/p' "$work/buildah/node-service/.pipeline/blubber.yaml" \
  | sed 's/^        //' > "$work/buildah/node-service/gen.sh"
awk '/^RUN <<.EOF.$/ {print "RUN --mount=type=bind,source=gen.sh,target=/tmp/gen.sh sh /tmp/gen.sh"; skip=1; next}
     skip && /^EOF$/ {skip=0; next} !skip' "$work/buildah/node-service/Dockerfile.local" > "$work/buildah/node-service/Dockerfile.local.tmp"
mv "$work/buildah/node-service/Dockerfile.local.tmp" "$work/buildah/node-service/Dockerfile.local"
# Let the page cache and ext4's freed-inode bookkeeping from the setup settle, so neither
# tool pays for the other's set-up.
sync; sleep "${SETTLE:-30}"

fl_build() { "$flense" --root "$store" build "$variant" -q -C "$work/flense/node-service" >/dev/null; }
bu_build() {
  (cd "$work/buildah/node-service" && "${B[@]}" bud -q --layers -f Dockerfile -t "node-service:$variant" . >/dev/null)
}
measure() { # name tool command...
  local name="$1" tool="$2"; shift 2
  local s; s="$(now)"; "$@"; T["$name,$tool"]="$(elapsed "$s")"
  echo "compare.sh: $name $tool ${T[$name,$tool]}s" >&2
}

measure cold flense fl_build
measure cold buildah bu_build
fl_local() { "$flense" --root "$store" build local -q -C "$work/flense/node-service" >/dev/null; }
bu_local() {
  (cd "$work/buildah/node-service" && "${B[@]}" bud -q --layers -f Dockerfile.local -t "node-service:local" . >/dev/null)
}
measure cold-local flense fl_local
measure cold-local buildah bu_local
measure noop flense fl_build
measure noop buildah bu_build
for t in flense buildah; do
  sed -i "s/status: 'ok'/status: 'ok' /" "$work/$t/node-service/src/app.js"
done
measure one-file flense fl_build
measure one-file buildah bu_build

fl_run() { "$flense" --root "$store" run --image "node-service:$variant" >/dev/null 2>&1; }
bu_run() {
  local c; c="$("${B[@]}" from -q "node-service:$variant")"
  "${B[@]}" run --user 900 --workingdir /srv/service "$c" -- npm test >/dev/null 2>&1
  "${B[@]}" rm "$c" >/dev/null
}
measure run flense fl_run
measure run buildah bu_run

# A local registry for push.
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$work/registry"
cat > "$work/registry.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
measure push flense "$flense" --root "$store" push "node-service:$variant" "127.0.0.1:$port/flense/node-service:$variant" >/dev/null 2>&1
measure push buildah "${B[@]}" push -q --tls-verify=false "node-service:$variant" "docker://127.0.0.1:$port/buildah/node-service:$variant"
measure push-noop flense "$flense" --root "$store" push "node-service:$variant" "127.0.0.1:$port/flense/node-service:$variant" >/dev/null 2>&1
measure push-noop buildah "${B[@]}" push -q --tls-verify=false "node-service:$variant" "docker://127.0.0.1:$port/buildah/node-service:$variant"

printf '%-10s %10s %10s %8s\n' step flense buildah ratio
for step in cold cold-local noop one-file run push push-noop; do
  f="${T[$step,flense]}"; b="${T[$step,buildah]}"
  printf '%-10s %9.2fs %9.2fs %7.2fx\n' "$step" "$f" "$b" "$(echo "$b / $f" | bc -l)"
done
echo "(ratio = buildah / flense; > 1 means flense is faster)"
