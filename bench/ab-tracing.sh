#!/usr/bin/env bash
# The end-to-end cost of tracing on one worker (bench/ab-worker.sh: wrk, nginx upstream, CPU µs per request):
# the commit before tracing, tracing off, and tracing on at 1 % and 100 % sampling with every span exported over
# OTLP/HTTP to the real collector (scripts/test-deps.sh builds it; it runs on CPU 0 with wrk and nginx, its file
# exporter writing to /dev/null). ROUNDS alternations (default 3):
#
#   bench/ab-tracing.sh [BASE_COMMIT]     (default: the commit before the tracing work, eb2e5bd)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BASE=${1:-eb2e5bd}
ROUNDS=${ROUNDS:-3}
BEFORE=$(mktemp -d /tmp/edgegate-before.XXXXXX)
CONF=$(mktemp /tmp/edgegate-otelcol.XXXXXX.yaml)
COLLECTOR_PORT=18200
trap '[[ -n "${OTELCOL:-}" ]] && kill "$OTELCOL" 2>/dev/null; rm -rf "$BEFORE" "$CONF"' EXIT
git -C "$HERE" archive "$BASE" | tar -x -C "$BEFORE"
ln -s "$HERE/node_modules" "$BEFORE/node_modules"
PIN=$(sed -n 's/^OTELCOL_VERSION=\([^[:space:]#]*\).*/\1/p' "$HERE/scripts/test-deps.versions")
BIN="${EDGEGATE_CACHE_DIR:-$HOME/.cache/edgegate}/bin/otelcol-$PIN"
cat > "$CONF" <<YAML
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:$COLLECTOR_PORT"}}}}
exporters: {file: {path: /dev/null}}
service: {telemetry: {metrics: {level: none}}, pipelines: {traces: {receivers: [otlp], exporters: [file]}}}
YAML
taskset -c 0 "$BIN" --config="$CONF" >/dev/null 2>&1 &
OTELCOL=$!
for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$COLLECTOR_PORT" && break; sleep 0.2; done
ON="--otlp-endpoint http://127.0.0.1:$COLLECTOR_PORT --tracing-sample-ratio"
for _ in $(seq "$ROUNDS"); do
  echo "== before ($BASE)"; "$HERE/bench/ab-worker.sh" "$BEFORE" | grep "µs" || true
  echo "== tracing off"; "$HERE/bench/ab-worker.sh" "$HERE" | grep "µs" || true
  echo "== tracing 1 %"; EXTRA_ARGS="$ON 0.01" "$HERE/bench/ab-worker.sh" "$HERE" | grep "µs" || true
  echo "== tracing 100 %"; EXTRA_ARGS="$ON 1" "$HERE/bench/ab-worker.sh" "$HERE" | grep "µs" || true
done
