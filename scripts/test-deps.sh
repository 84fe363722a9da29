#!/usr/bin/env bash
# Provides the real servers the tests run against, at the versions pinned in
# scripts/test-deps.versions:
#   consul, kube-apiserver, kubectl, etcd  - built from their published Go modules
#   helm                                   - go install helm.sh/helm/v3/cmd/helm@<pin>
#   kubelet, kube-scheduler,               - the real node (test/support/node.ts): same Kubernetes
#   kube-controller-manager                  version and wrapper module as kube-apiserver
#   containerd, containerd-shim-runc-v2,   - built from github.com/containerd/containerd/v2 (CGO off)
#   ctr
#   prometheus                             - go install github.com/prometheus/prometheus/cmd/prometheus@<pin>
#                                            with Kubernetes service discovery (Debian's has none)
#   otelcol                                - a minimal OpenTelemetry Collector (OTLP receiver + file exporter),
#                                            built from a generated main.go against its Go modules
# plus the Debian packages the tests need (iproute2, prometheus for promtool and the
# real node's scraper, runc, the CNI plugins, iptables, conntrack, buildah, mmdebstrap).
#
# Binaries are cached by version in ${EDGEGATE_CACHE_DIR:-~/.cache/edgegate}/bin/<name>-<version>;
# a fully cached run only checks that they exist and prints their versions.
# Needs: the Go toolchain (go.mod-compatible with the pins, see the 'go' lines
# upstream), network access to the Go module proxy, and apt for Debian packages.
#
# Usage: bash scripts/test-deps.sh [--force NAME]...   (rebuild NAME even if cached)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSIONS_FILE="$ROOT/scripts/test-deps.versions"
CACHE_DIR="${EDGEGATE_CACHE_DIR:-$HOME/.cache/edgegate}"
BIN_DIR="$CACHE_DIR/bin"
BUILD_DIR="$CACHE_DIR/build"
LOG_DIR="$CACHE_DIR/logs"

FORCE=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE+=("$2"); shift 2 ;;
    *) echo "test-deps: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf 'test-deps: %s\n' "$*" >&2; }
die() { printf 'test-deps: FAILED: %s\n' "$*" >&2; exit 1; }

# --- pinned versions ---------------------------------------------------------
read_pin() {
  local v
  v="$(sed -n "s/^$1=\\([^[:space:]#]*\\).*/\\1/p" "$VERSIONS_FILE" | tail -n 1)"
  [[ -n "$v" ]] || die "$1 is not set in $VERSIONS_FILE"
  printf '%s' "$v"
}
CONSUL_VERSION="$(read_pin CONSUL_VERSION)"
KUBERNETES_VERSION="$(read_pin KUBERNETES_VERSION)"
ETCD_VERSION="$(read_pin ETCD_VERSION)"
HELM_VERSION="$(read_pin HELM_VERSION)"
H2SPEC_VERSION="$(read_pin H2SPEC_VERSION)"
CONTAINERD_VERSION="$(read_pin CONTAINERD_VERSION)"
PROMETHEUS_VERSION="$(read_pin PROMETHEUS_VERSION)"
OTELCOL_VERSION="$(read_pin OTELCOL_VERSION)"
GATEWAY_API_VERSION="$(read_pin GATEWAY_API_VERSION)"
CONSUL_SUBMODULE_OVERRIDES="$(sed -n 's/^CONSUL_SUBMODULE_OVERRIDES=\([^#]*\).*/\1/p' "$VERSIONS_FILE" | tail -n 1)"

mkdir -p "$BIN_DIR" "$BUILD_DIR" "$LOG_DIR"

# --- Go toolchain ------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "the Go toolchain is required (go not found in PATH)"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
export GOFLAGS="-mod=mod"
NICE=(nice -n 10)

# Run a build step with its output in a log file; on failure print the exact
# command and the tail of its output, and stop.
run_step() {
  local logfile="$1"; shift
  printf '+ %s\n' "$*" >>"$logfile"
  if ! "$@" >>"$logfile" 2>&1; then
    log "step failed: $*"
    log "(in $(pwd); full log: $logfile)"
    tail -n 40 "$logfile" >&2
    die "$*"
  fi
}

forced() {
  local n
  for n in "${FORCE[@]+"${FORCE[@]}"}"; do [[ "$n" == "$1" ]] && return 0; done
  return 1
}

# --- wrapper modules -----------------------------------------------------------
# prepare_wrapper DIR MODULE VERSION STAGING_MAP [OVERRIDES]
# Creates DIR/go.mod: a copy of MODULE@VERSION's go.mod (same requirements,
# excludes and non-local replaces, so the build resolves exactly what upstream
# tested) renamed to a wrapper module that requires MODULE@VERSION, with every
# local-path replace ("=> ./api", "=> ../client/v3") rewritten to the published
# version of that module: the version upstream requires, or, where upstream
# requires the placeholder v0.0.0 (k8s staging), STAGING_MAP applied to VERSION
# ("k8s": v1.X.Y -> v0.X.Y; "same": VERSION). OVERRIDES ("mod@version ...")
# win over both, for upstream go.mod files whose required version is stale.
prepare_wrapper() {
  local dir="$1" module="$2" version="$3" staging_map="$4" overrides="${5:-}"
  local logfile="$dir/prepare.log"
  local stamp="$module@$version $staging_map $overrides"
  if [[ -f "$dir/.prepared" && "$(cat "$dir/.prepared")" == "$stamp" ]]; then return 0; fi
  rm -f "$dir/go.mod" "$dir/go.sum" "$dir/.prepared"
  mkdir -p "$dir"
  : >"$logfile"
  log "preparing wrapper module for $module@$version in $dir"
  local json srcdir
  (cd "$dir" && run_step "$logfile" go mod download -json "$module@$version")
  json="$(cd "$dir" && go mod download -json "$module@$version")"
  srcdir="$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$srcdir" && -f "$srcdir/go.mod" ]] || die "could not locate the source of $module@$version (go mod download -json)"
  cp "$srcdir/go.mod" "$dir/go.mod"
  chmod u+w "$dir/go.mod"
  if [[ -f "$srcdir/go.sum" ]]; then cp "$srcdir/go.sum" "$dir/go.sum"; chmod u+w "$dir/go.sum"; fi
  (
    cd "$dir"
    run_step "$logfile" go mod edit -module "edgegate.local/test-deps/wrapper" -require "$module@$version"
    # 'tool' directives name packages of the upstream module itself; they mean nothing here.
    local t
    for t in $(go mod edit -json | sed -n '/"Tool": \[/,/\]/s/^[[:space:]]*"Path": "\(.*\)".*/\1/p'); do
      run_step "$logfile" go mod edit -droptool "$t"
    done
    # Local-path replaces -> published versions.
    local lhs req pub
    while read -r lhs; do
      [[ -n "$lhs" ]] || continue
      req="$(awk -v m="$lhs" '
        /^require[ \t]*\(/ { inb = 1; next }
        inb && /^\)/ { inb = 0; next }
        inb && $1 == m { print $2; exit }
        /^require[ \t]/ && $2 == m { print $3; exit }' go.mod)"
      local o
      pub=""
      for o in $overrides; do [[ "${o%@*}" == "$lhs" ]] && pub="${o#*@}"; done
      if [[ -n "$pub" ]]; then
        :
      elif [[ -n "$req" && "$req" != "v0.0.0" ]]; then
        pub="$req"
      else
        case "$staging_map" in
          k8s) pub="v0.${version#v1.}" ;;
          same) pub="$version" ;;
          *) die "no published version known for $lhs (required: '${req:-none}')" ;;
        esac
      fi
      printf 'replace %s => %s %s\n' "$lhs" "$lhs" "$pub" >>"$logfile"
      run_step "$logfile" go mod edit -dropreplace "$lhs" -replace "$lhs=$lhs@$pub"
    done < <(awk '
      /^replace[ \t]*\(/ { inb = 1; next }
      inb && /^\)/ { inb = 0; next }
      inb { line = $0 }
      !inb && /^replace[ \t]/ { line = $0; sub(/^replace[ \t]+/, "", line) }
      line != "" {
        n = split(line, parts, "=>")
        if (n == 2) {
          split(parts[1], l, " "); split(parts[2], r, " ")
          if (r[1] ~ /^\.\.?\//) print l[1]
        }
        line = ""
      }' go.mod)
  )
  printf '%s' "$stamp" >"$dir/.prepared"
}

# go_build_to NAME VERSION DIR PKG LDFLAGS
# Builds PKG inside wrapper DIR into the cache as NAME-VERSION (via a temp name
# and an atomic rename, so concurrent runs never see a half-written binary).
go_build_to() {
  local name="$1" version="$2" dir="$3" pkg="$4" ldflags="$5"
  local dest="$BIN_DIR/$name-$version" logfile="$LOG_DIR/$name-$version.build.log"
  local tmp="$dest.tmp.$$"
  : >"$logfile"
  log "building $name $version ($pkg); log: $logfile"
  local start=$SECONDS
  (cd "$dir" && run_step "$logfile" "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$dest"
  log "built $name $version in $((SECONDS - start))s"
}

# ensure NAME VERSION BUILD_FUNCTION: build unless cached; serialise concurrent
# runs on a per-binary lock so the second one reuses the first one's result.
BUILT=()
ensure() {
  local name="$1" version="$2" fn="$3"
  local dest="$BIN_DIR/$name-$version"
  if [[ -x "$dest" ]] && ! forced "$name"; then
    log "cached: $name $version ($dest)"
    return 0
  fi
  exec {lockfd}>"$BIN_DIR/.$name-$version.lock"
  flock "$lockfd"
  if [[ -x "$dest" ]] && ! forced "$name"; then
    log "cached (built by a concurrent run): $name $version"
  else
    "$fn" "$name" "$version"
    BUILT+=("$name")
  fi
  flock -u "$lockfd"
  exec {lockfd}>&-
}

# --- the binaries --------------------------------------------------------------
build_consul() {
  local name="$1" version="$2" dir="$BUILD_DIR/consul-$2"
  prepare_wrapper "$dir" github.com/hashicorp/consul "$version" same "$CONSUL_SUBMODULE_OVERRIDES"
  go_build_to "$name" "$version" "$dir" github.com/hashicorp/consul \
    "-X github.com/hashicorp/consul/version.GitCommit=${version}-edgegate -X github.com/hashicorp/consul/version.BuildDate=1970-01-01T00:00:00Z"
}

kube_ldflags() {
  local v="$KUBERNETES_VERSION" minor major flags="" pkg
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v*.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$flags"
}

build_kube_apiserver() {
  local dir="$BUILD_DIR/kubernetes-$2"
  prepare_wrapper "$dir" k8s.io/kubernetes "$2" k8s
  go_build_to "$1" "$2" "$dir" k8s.io/kubernetes/cmd/kube-apiserver "$(kube_ldflags)"
}

build_kubectl() {
  local dir="$BUILD_DIR/kubernetes-$2"
  prepare_wrapper "$dir" k8s.io/kubernetes "$2" k8s
  go_build_to "$1" "$2" "$dir" k8s.io/kubernetes/cmd/kubectl "$(kube_ldflags)"
}

build_kubelet() {
  local dir="$BUILD_DIR/kubernetes-$2"
  prepare_wrapper "$dir" k8s.io/kubernetes "$2" k8s
  go_build_to "$1" "$2" "$dir" k8s.io/kubernetes/cmd/kubelet "$(kube_ldflags)"
}

build_kube_scheduler() {
  local dir="$BUILD_DIR/kubernetes-$2"
  prepare_wrapper "$dir" k8s.io/kubernetes "$2" k8s
  go_build_to "$1" "$2" "$dir" k8s.io/kubernetes/cmd/kube-scheduler "$(kube_ldflags)"
}

build_kube_controller_manager() {
  local dir="$BUILD_DIR/kubernetes-$2"
  prepare_wrapper "$dir" k8s.io/kubernetes "$2" k8s
  go_build_to "$1" "$2" "$dir" k8s.io/kubernetes/cmd/kube-controller-manager "$(kube_ldflags)"
}

# containerd 2.x (kubelet 1.38 refuses Debian's 1.6): the daemon, its runc shim and ctr (to import the
# locally built images), from one wrapper module. CGO is off, which leaves out only the btrfs snapshotter.
containerd_ldflags() {
  local pkg=github.com/containerd/containerd/v2/version
  printf '%s' "-X $pkg.Version=$CONTAINERD_VERSION -X $pkg.Revision=edgegate -X $pkg.Package=github.com/containerd/containerd/v2"
}

build_containerd_cmd() {
  local dir="$BUILD_DIR/containerd-$2"
  prepare_wrapper "$dir" github.com/containerd/containerd/v2 "$2" same
  go_build_to "$1" "$2" "$dir" "github.com/containerd/containerd/v2/cmd/$1" "$(containerd_ldflags)"
}

build_etcd() {
  local dir="$BUILD_DIR/etcd-$2"
  prepare_wrapper "$dir" go.etcd.io/etcd/server/v3 "$2" same
  go_build_to "$1" "$2" "$dir" go.etcd.io/etcd/server/v3 \
    "-X go.etcd.io/etcd/api/v3/version.GitSHA=${2}-edgegate"
}

# `go install PACKAGE@VERSION` (a module that builds as published) into the cache as NAME-VERSION.
go_install_to() {
  local name="$1" version="$2" pkg="$3" ldflags="$4" tags="${5:-}"
  local dest="$BIN_DIR/$name-$version" logfile="$LOG_DIR/$name-$version.build.log"
  local gobin="$BUILD_DIR/$name-$version.gobin.$$"
  : >"$logfile"
  log "building $name $version (go install $pkg@$version); log: $logfile"
  local start=$SECONDS
  mkdir -p "$gobin"
  (cd "$BUILD_DIR" && run_step "$logfile" env GOFLAGS= GOBIN="$gobin" "${NICE[@]}" go install -trimpath \
    ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" "$pkg@$version")
  mv -f "$gobin/${pkg##*/}" "$dest"
  rmdir "$gobin"
  log "built $name $version in $((SECONDS - start))s"
}

build_helm() {
  go_install_to "$1" "$2" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$2 -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
}

# Prometheus for the real node's scrape test (kubernetes_sd_configs): Debian's 2.42 leaves the Kubernetes service
# discovery out. Only that discovery is built in (remove_all_sd + enable_kubernetes_sd); no web UI assets.
build_prometheus() {
  # Module v0.3XX.Y is Prometheus 3.XX.Y.
  local v="$2" pkg=github.com/prometheus/common/version minor patch
  minor="${v#v0.}"; patch="${minor#*.}"; minor="${minor%%.*}"
  go_install_to "$1" "$2" github.com/prometheus/prometheus/cmd/prometheus \
    "-X $pkg.Version=3.$((minor - 300)).$patch -X $pkg.Revision=edgegate -X $pkg.Branch=$v" \
    remove_all_sd,enable_kubernetes_sd
}

build_h2spec() {
  go_install_to "$1" "$2" github.com/summerwind/h2spec/cmd/h2spec ""
}

# A minimal OpenTelemetry Collector for the tracing tests (test/e2e/tracing): the OTLP receiver and the file
# exporter, nothing else. The collector is a library plus a generated main (as its builder, ocb, would write); all
# three modules at one release (the core v1.x modules follow from otelcol's own requirements).
build_otelcol() {
  local name="$1" version="$2" dir="$BUILD_DIR/otelcol-$2"
  local logfile="$LOG_DIR/$name-$version.build.log"
  mkdir -p "$dir"
  : >"$logfile"
  local start=$SECONDS
  cat >"$dir/main.go" <<GO
// Generated by scripts/test-deps.sh: an OpenTelemetry Collector with the OTLP receiver and the file exporter.
package main

import (
	"log"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

func components() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](fileexporter.NewFactory())
	return f, err
}

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol", Description: "OTLP receiver and file exporter (edgegate tests)", Version: "$version"},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
				DefaultScheme:     "env",
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatal(err)
	}
}
GO
  if [[ ! -f "$dir/go.mod" ]]; then
    (cd "$dir" && run_step "$logfile" go mod init edgegate.local/test-deps/otelcol)
  fi
  (cd "$dir" && run_step "$logfile" env GOFLAGS="-mod=mod" go get \
    "go.opentelemetry.io/collector/otelcol@$version" \
    "go.opentelemetry.io/collector/receiver/otlpreceiver@$version" \
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter@$version")
  # The confmap providers at the core v1.x release that goes with this one (never the newest).
  local core
  core="$(cd "$dir" && go list -m -f '{{.Version}}' go.opentelemetry.io/collector/confmap)"
  (cd "$dir" && run_step "$logfile" env GOFLAGS="-mod=mod" go get \
    "go.opentelemetry.io/collector/confmap/provider/fileprovider@$core" \
    "go.opentelemetry.io/collector/confmap/provider/envprovider@$core")
  (cd "$dir" && run_step "$logfile" env GOFLAGS="-mod=mod" go mod tidy)
  log "otelcol $version: modules resolved in $((SECONDS - start))s"
  GOFLAGS="-mod=mod" go_build_to "$name" "$version" "$dir" . ""
  log "otelcol $version: total $((SECONDS - start))s"
}

# --- Gateway API -------------------------------------------------------------------
# The conformance suite as a test binary: test/conformance is a small module of ours that requires
# sigs.k8s.io/gateway-api/conformance at the pin and runs its RunConformance (flags at run time).
build_gateway_api_conformance() {
  local name="$1" version="$2" dest="$BIN_DIR/$1-$2" logfile="$LOG_DIR/$1-$2.build.log"
  : >"$logfile"
  grep -q "sigs.k8s.io/gateway-api/conformance $version\$" "$ROOT/test/conformance/go.mod" ||
    die "test/conformance/go.mod does not require sigs.k8s.io/gateway-api/conformance $version (GATEWAY_API_VERSION)"
  log "building $name $version (go test -c, test/conformance); log: $logfile"
  local start=$SECONDS
  (cd "$ROOT/test/conformance" && run_step "$logfile" "${NICE[@]}" go test -c -trimpath -ldflags "-s -w" \
    -o "$dest.tmp.$$" .)
  mv -f "$dest.tmp.$$" "$dest"
  log "built $name $version in $((SECONDS - start))s"
}

# The suite's echo backend (the image its manifests name), from the same module: a static binary that
# test/e2e/node packs into an image with buildah.
build_echo_basic() {
  local name="$1" version="$2" dest="$BIN_DIR/$1-$2" logfile="$LOG_DIR/$1-$2.build.log"
  local dir="$BUILD_DIR/echo-basic-$2" json src
  : >"$logfile"
  log "building $name $version (conformance/echo-basic); log: $logfile"
  local start=$SECONDS
  json="$(cd "$BUILD_DIR" && go mod download -json "sigs.k8s.io/gateway-api/conformance@$version")"
  src="$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$src/echo-basic" ]] || die "no echo-basic in sigs.k8s.io/gateway-api/conformance@$version"
  rm -rf "$dir" && mkdir -p "$dir" && cp -r "$src/echo-basic/." "$dir/" && chmod -R u+w "$dir"
  # Upstream keeps its own go.mod as .go.mod (its Dockerfile renames it the same way).
  mv -f "$dir/.go.mod" "$dir/go.mod" && mv -f "$dir/.go.sum" "$dir/go.sum"
  (cd "$dir" && run_step "$logfile" "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$dest.tmp.$$" .)
  mv -f "$dest.tmp.$$" "$dest"
  log "built $name $version in $((SECONDS - start))s"
}

# The standard-channel CRDs of the pinned module, copied where the tests read them.
ensure_gateway_api_crds() {
  local dir="$CACHE_DIR/gateway-api-$GATEWAY_API_VERSION/standard" json src
  [[ -f "$dir/gateway.networking.k8s.io_httproutes.yaml" ]] && return 0
  json="$(cd "$BUILD_DIR" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
  src="$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$src/config/crd/standard" ]] || die "no config/crd/standard in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  mkdir -p "$dir.tmp.$$" && cp "$src"/config/crd/standard/*.yaml "$dir.tmp.$$/" && chmod u+w "$dir.tmp.$$"/*
  mv -T "$dir.tmp.$$" "$dir"
  log "Gateway API $GATEWAY_API_VERSION standard CRDs in $dir"
}

# --- Debian packages -----------------------------------------------------------
ensure_apt() {
  local missing=() cmd pkg
  # promtool (package prometheus): `promtool check metrics` / `check rules` in test/e2e/observe.
  # h2load (nghttp2-client), openssl and curl: test/e2e/tls (certificates, HTTP/2 load, --resolve checks).
  # The real node (test/support/node.ts): runc under containerd, the CNI plugins (bridge, host-local, portmap,
  # loopback in /usr/lib/cni), iptables for the portmap plugin and the Service IP, conntrack, buildah to build
  # the images from the Dockerfile, mmdebstrap for the stand-in base image.
  # redis-server: the shared store of Global rate limits (test/support/redis.ts); haproxy: a real PROXY-protocol
  # sender (send-proxy / send-proxy-v2) in test/e2e/proxy-protocol.test.ts.
  for pair in "ip:iproute2" "promtool:prometheus" "h2load:nghttp2-client" "redis-server:redis-server" "haproxy:haproxy" \
    "openssl:openssl" "curl:curl" "runc:runc" "/usr/lib/cni/bridge:containernetworking-plugins" \
    "iptables:iptables" "conntrack:conntrack" "buildah:buildah" "mmdebstrap:mmdebstrap" "unshare:util-linux" \
    "nsenter:util-linux" "flock:util-linux"; do
    cmd="${pair%%:*}"; pkg="${pair#*:}"
    if [[ "$cmd" == /* ]]; then
      [[ -e "$cmd" ]] || missing+=("$pkg")
    else
      # sbin is not on every PATH (runc, iptables, conntrack live there).
      command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" || -x "/sbin/$cmd" ]] || missing+=("$pkg")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] || mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
  local sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo -n)
  log "installing Debian packages: ${missing[*]}"
  local logfile="$LOG_DIR/apt.log"
  : >"$logfile"
  run_step "$logfile" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_step "$logfile" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- main ------------------------------------------------------------------------
START=$SECONDS
ensure_apt
ensure etcd "$ETCD_VERSION" build_etcd
ensure helm "$HELM_VERSION" build_helm
ensure kube-apiserver "$KUBERNETES_VERSION" build_kube_apiserver
ensure kubectl "$KUBERNETES_VERSION" build_kubectl
ensure consul "$CONSUL_VERSION" build_consul
ensure h2spec "$H2SPEC_VERSION" build_h2spec
ensure kubelet "$KUBERNETES_VERSION" build_kubelet
ensure kube-scheduler "$KUBERNETES_VERSION" build_kube_scheduler
ensure kube-controller-manager "$KUBERNETES_VERSION" build_kube_controller_manager
ensure containerd "$CONTAINERD_VERSION" build_containerd_cmd
ensure containerd-shim-runc-v2 "$CONTAINERD_VERSION" build_containerd_cmd
ensure ctr "$CONTAINERD_VERSION" build_containerd_cmd
ensure prometheus "$PROMETHEUS_VERSION" build_prometheus
ensure otelcol "$OTELCOL_VERSION" build_otelcol
ensure gateway-api-conformance "$GATEWAY_API_VERSION" build_gateway_api_conformance
ensure echo-basic "$GATEWAY_API_VERSION" build_echo_basic
ensure_gateway_api_crds

# Manifest for tools that do not want to parse the versions file.
manifest_tmp="$BIN_DIR/manifest.json.tmp.$$"
cat >"$manifest_tmp" <<EOF
{
  "consul": "$BIN_DIR/consul-$CONSUL_VERSION",
  "kube-apiserver": "$BIN_DIR/kube-apiserver-$KUBERNETES_VERSION",
  "kubectl": "$BIN_DIR/kubectl-$KUBERNETES_VERSION",
  "etcd": "$BIN_DIR/etcd-$ETCD_VERSION",
  "helm": "$BIN_DIR/helm-$HELM_VERSION",
  "h2spec": "$BIN_DIR/h2spec-$H2SPEC_VERSION",
  "kubelet": "$BIN_DIR/kubelet-$KUBERNETES_VERSION",
  "kube-scheduler": "$BIN_DIR/kube-scheduler-$KUBERNETES_VERSION",
  "kube-controller-manager": "$BIN_DIR/kube-controller-manager-$KUBERNETES_VERSION",
  "containerd": "$BIN_DIR/containerd-$CONTAINERD_VERSION",
  "containerd-shim-runc-v2": "$BIN_DIR/containerd-shim-runc-v2-$CONTAINERD_VERSION",
  "ctr": "$BIN_DIR/ctr-$CONTAINERD_VERSION",
  "prometheus": "$BIN_DIR/prometheus-$PROMETHEUS_VERSION",
  "otelcol": "$BIN_DIR/otelcol-$OTELCOL_VERSION",
  "gateway-api-conformance": "$BIN_DIR/gateway-api-conformance-$GATEWAY_API_VERSION",
  "echo-basic": "$BIN_DIR/echo-basic-$GATEWAY_API_VERSION",
  "gateway-api-crds": "$CACHE_DIR/gateway-api-$GATEWAY_API_VERSION/standard"
}
EOF
mv -f "$manifest_tmp" "$BIN_DIR/manifest.json"

if [[ ${#BUILT[@]} -gt 0 ]]; then
  log "built: ${BUILT[*]} in $((SECONDS - START))s"
else
  log "everything cached ($((SECONDS - START))s)"
fi

# Each binary's own idea of its version: proves it runs.
show() {
  local name="$1" out
  shift
  out="$("$@" 2>&1)" || die "$name does not run: $* -> $out"
  printf '  %-15s %s\n' "$name" "$(printf '%s' "$out" | grep -v '^[[:space:]]*$' | head -n 1)"
}
echo "test-deps: binaries in $BIN_DIR"
show consul "$BIN_DIR/consul-$CONSUL_VERSION" version
show kube-apiserver "$BIN_DIR/kube-apiserver-$KUBERNETES_VERSION" --version
show kubectl "$BIN_DIR/kubectl-$KUBERNETES_VERSION" version --client
show etcd "$BIN_DIR/etcd-$ETCD_VERSION" --version
show helm "$BIN_DIR/helm-$HELM_VERSION" version --short
show h2spec "$BIN_DIR/h2spec-$H2SPEC_VERSION" --version
show kubelet "$BIN_DIR/kubelet-$KUBERNETES_VERSION" --version
show kube-scheduler "$BIN_DIR/kube-scheduler-$KUBERNETES_VERSION" --version
show kube-controller-manager "$BIN_DIR/kube-controller-manager-$KUBERNETES_VERSION" --version
show containerd "$BIN_DIR/containerd-$CONTAINERD_VERSION" --version
show containerd-shim "$BIN_DIR/containerd-shim-runc-v2-$CONTAINERD_VERSION" -v
show ctr "$BIN_DIR/ctr-$CONTAINERD_VERSION" --version
show prometheus "$BIN_DIR/prometheus-$PROMETHEUS_VERSION" --version
show otelcol "$BIN_DIR/otelcol-$OTELCOL_VERSION" --version
show runc runc --version
show buildah buildah --version
show mmdebstrap mmdebstrap --version
