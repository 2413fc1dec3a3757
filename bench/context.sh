#!/usr/bin/env bash
# Large build contexts (issue 19): rebuild cost against the size of the context.
# For contexts of 10k, 50k and 200k small files (directories of 250 files: 40, 200 and
# 800 of them) in a project whose variant copies the context (`copies: [local]` on the
# busybox fixture base), measures
#   no-op    a rebuild with nothing changed
#   1-file   a rebuild after one file's content changed (new content every round): the
#            first file of the context grows by 600 bytes, which moves every later tar
#            record (the worst case for flense, which rewrites the copy layer from the
#            previous one: no later gzip block can be reused; CHANGE=edit keeps its
#            padded size, so only the first block is compressed again)
# for flense (`flense build`) and buildah (`buildah build --layers` of the Dockerfile
# that `flense dockerfile` renders), next to two floors:
#   find     `find CTX -printf '%s %T@ %i\n'`: one stat walk of the context
#   tar|gz   `tar -cf - CTX | gzip -4`: writing the changed copy layer (flense's level)
# Each measured run is preceded by `sync` and, as root, a drop of the page caches
# (DROP_CACHES=0 skips it); the tools alternate within a round; the table shows the
# median and the max of ROUNDS runs, and each tool's peak RSS (`/usr/bin/time -v`,
# largest of the runs). The load average is printed with every run: other work on the
# machine makes the numbers noisy.
#
# Usage: bench/context.sh [SIZE...]   (default: 10000 50000 200000; ROUNDS=5,
#        DROP_CACHES=1, BUILDAH_MAX=50000: buildah is skipped above that size (it takes
#        minutes per run there); FLENSE=path/to/flense skips building it)
# Needs: root, buildah, GNU time (apt-get install time, done here when missing), bc.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${ROUNDS:-5}"
drop="${DROP_CACHES:-1}"
buildah_max="${BUILDAH_MAX:-50000}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 50000 200000)

[ "$(id -u)" = 0 ] || { echo "context.sh: run as root (buildah storage, drop_caches)" >&2; exit 2; }
if [ ! -x /usr/bin/time ]; then apt-get install -y -qq time >/dev/null; fi
for tool in buildah bc gzip; do
  command -v "$tool" >/dev/null || { echo "context.sh: needs $tool (apt-get install $tool)" >&2; exit 2; }
done

flense="${FLENSE:-}"
if [ -z "$flense" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin flense
  flense="${CARGO_TARGET_DIR:-$here/target}/release/flense"
fi
work="$(mktemp -d /var/tmp/flense-context-bench.XXXXXX)"
export BUILDAH_ISOLATION=chroot
buildah_cmd() { buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver overlay "$@"; }
cleanup() {
  if [ -d "$work/buildah" ]; then
    buildah_cmd rm --all >/dev/null 2>&1 || true
    buildah_cmd rmi --all --force >/dev/null 2>&1 || true
    { grep -o " $work/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
log() { echo "context.sh: $*" >&2; }
load() { cut -d' ' -f1 /proc/loadavg; }

# The base image, in both tools' storage.
base_tar="$("$here/fixtures/base-images/build.sh" busybox)"
"$flense" --root "$work/store" import "$base_tar" --tag localhost/busybox:latest >/dev/null
ctr="$(buildah_cmd from scratch)"
buildah_cmd add "$ctr" "$base_tar" / >/dev/null
buildah_cmd commit -q "$ctr" localhost/busybox:latest >/dev/null
buildah_cmd rm "$ctr" >/dev/null

# A project with a context of SIZE files (250 per directory, ~100 bytes each).
make_project() {
  local dir="$1" size="$2" dirs=$(( $2 / 250 ))
  mkdir -p "$dir/.pipeline"
  cat > "$dir/.pipeline/blubber.yaml" <<'EOF'
version: v4
lives:
  in: /srv/app
variants:
  test:
    base: localhost/busybox:latest
    copies: [local]
    entrypoint: [/bin/sh]
EOF
  python3 - "$dir/src" "$dirs" <<'EOF'
import os, sys
root, dirs = sys.argv[1], int(sys.argv[2])
for d in range(dirs):
    p = os.path.join(root, f"d{d:04}")
    os.makedirs(p)
    for f in range(250):
        with open(os.path.join(p, f"f{f:03}.txt"), "w") as fh:
            fh.write(f"file {d}/{f} " + "x" * 90 + "\n")
EOF
  # busybox has no groupadd/useradd (flense creates Blubber's users natively): buildah
  # gets the directories those lines make instead.
  "$flense" dockerfile test -f "$dir/.pipeline/blubber.yaml" \
    | sed -E '/^RUN \(getent group "\$LIVES_GID"/c RUN mkdir -p /srv/app /opt/lib \&\& chown 65533:65533 /srv/app /opt/lib' \
    | sed -E '/^RUN \(getent/d' > "$work/Dockerfile"
}

# Runs "$@" after sync and (as configured) a page cache drop, under /usr/bin/time;
# appends "seconds maxrss_kb" to the file $out.
measure() {
  local out="$1"; shift
  export project
  sync
  if [ "$drop" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
  /usr/bin/time -f '%e %M' -o "$work/time" bash -c "$1" >/dev/null 2>"$work/err" || {
    cat "$work/err" >&2; log "FAILED: $*"; exit 1; }
  cat "$work/time" >> "$out"
}
run_flense() { "$flense" --root "$work/store" build test -q -C "$project"; }
run_buildah() { buildah_cmd build -q --layers -f "$work/Dockerfile" -t bench:test "$project"; }
run_find() { find "$project" -printf '%s %T@ %i\n'; }
run_targz() { tar -C "$project" -cf - . | gzip -4; }
export -f run_flense run_buildah run_find run_targz buildah_cmd
export flense work
change_one() {
  local f="$project/src/d0000/f000.txt"
  case "${CHANGE:-grow}" in
    grow) { head -c 600 /dev/zero | tr '\0' y; echo " round $1"; } >> "$f" ;;
    edit) printf 'round %03d %s\n' "$1" "$(head -c 90 "$f" | tail -c 80)" > "$f.new" && mv "$f.new" "$f" ;;
    *) echo "context.sh: CHANGE is grow or edit" >&2; exit 2 ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
stats() { # file -> "median max peakMB"
  local f="$1"
  [ -s "$f" ] || { echo "- - -"; return; }
  printf '%s %s %s\n' "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f1 "$f" | sort -n | tail -1)" \
    "$(cut -d' ' -f2 "$f" | sort -n | tail -1 | awk '{printf "%.0f", $1/1024}')"
}

results="$work/results"
: > "$results"
for size in "${sizes[@]}"; do
  project="$work/p$size"
  log "size $size: generating the context"
  make_project "$project" "$size"
  m="$work/m$size"
  mkdir -p "$m"
  tools=(flense)
  if [ "$size" -le "$buildah_max" ]; then tools+=(buildah); else log "size $size: buildah skipped (BUILDAH_MAX=$buildah_max)"; fi
  for t in "${tools[@]}"; do "run_$t" >/dev/null; done # the cold builds, not measured
  for r in $(seq 1 "$rounds"); do
    order=()
    for i in "${!tools[@]}"; do order+=("${tools[$(( (i + r) % ${#tools[@]} ))]}"); done
    # Every tool has built the current tree: a no-op each, then one change for all.
    for t in "${order[@]}"; do
      measure "$m/$t.noop" "run_$t"
      log "size $size round $r $t no-op $(tail -1 "$m/$t.noop") (load $(load))"
    done
    change_one "$r"
    for t in "${order[@]}"; do
      measure "$m/$t.change" "run_$t"
      log "size $size round $r $t 1-file $(tail -1 "$m/$t.change") (load $(load))"
    done
    measure "$m/find" run_find
    measure "$m/targz" run_targz
  done
  for t in flense buildah; do
    read -r nm nx nr <<<"$(stats "$m/$t.noop")"
    read -r cm cx cr <<<"$(stats "$m/$t.change")"
    echo "$size $t $nm $nx $cm $cx $(printf '%s\n' "$nr" "$cr" | sort -n | tail -1)" >> "$results"
  done
  read -r fm fx _ <<<"$(stats "$m/find")"
  read -r gm gx _ <<<"$(stats "$m/targz")"
  echo "$size floor $fm $fx $gm $gx -" >> "$results"
  buildah_cmd rmi --all --force >/dev/null 2>&1 || true
  buildah_cmd rm --all >/dev/null 2>&1 || true
  # keep the base for the next size
  ctr="$(buildah_cmd from scratch)"; buildah_cmd add "$ctr" "$base_tar" / >/dev/null
  buildah_cmd commit -q "$ctr" localhost/busybox:latest >/dev/null; buildah_cmd rm "$ctr" >/dev/null
  rm -rf "$project"
done

echo "median (max) of $rounds round(s), seconds; drop_caches=$drop; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "floor row: no-op columns = find stat walk, 1-file columns = tar | gzip -4 of the context"
printf '%-7s %-8s %16s %16s %9s\n' files tool no-op 1-file peak-RSS
while read -r size t nm nx cm cx rss; do
  printf '%-7s %-8s %7s (%6s) %7s (%6s) %7s MB\n' "$size" "$t" "$nm" "$nx" "$cm" "$cx" "$rss"
done < "$results"
