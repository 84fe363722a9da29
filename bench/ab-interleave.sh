#!/usr/bin/env bash
# Interleaved A/B of whole gateways: SETS times, one fresh `edgegate run --workers 1` per checkout, all up at once on
# CPU 1 (an idle gateway costs nothing measurable), then ROUNDS rounds of a DUR-second wrk burst against each in a
# rotating order; CPU µs/request per burst from /proc (primary + worker). Bursts of different checkouts are seconds
# apart, so the machine's load cancels out within a set; fresh sets sample the process-to-process spread (heap
# layout, JIT decisions), which is as large as 10 % on its own (docs/benchmarks.md, "Issue 15"). The first
# checkout is the base of the summary (bench/ab-stats.ts).
#
#   for c in BASE OTHER; do mkdir -p /tmp/ab/$c && git archive $c | tar -x -C /tmp/ab/$c; done   # npm ci in each,
#   # or ln -s "$PWD/node_modules" /tmp/ab/$c/ when package-lock.json is the same
#   SETS=9 ROUNDS=8 bench/ab-interleave.sh /tmp/ab/BASE /tmp/ab/OTHER .
#
# Same load as bench/ab-worker.sh (its h1 case): bench/lib/targets.ts's 1,000 routes, access log sampled 1 %, nginx
# upstream and `wrk -t1 -c50` on CPU 0. BODY=16k: the 16 KiB answer. OUT: keep the per-burst lines in this file (default: a temporary file).
set -euo pipefail
DIRS=()
for d in "$@"; do DIRS+=("$(cd "$d" && pwd)"); done
((${#DIRS[@]} >= 2)) || { echo "usage: bench/ab-interleave.sh BASE_DIR DIR..." >&2; exit 2; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
SETS=${SETS:-6} ROUNDS=${ROUNDS:-8} DUR=${DUR:-2}
N=${#DIRS[@]}
WORK=$(mktemp -d /tmp/edgegate-abi.XXXXXX)
chmod 755 "$WORK" # nginx workers (another user) read the 16 KiB file from it
OUT=${OUT:-$WORK/bursts.txt}
NODE="$HERE/node_modules/.bin/node"
PIDS=()
stop() {
  for p in "${PIDS[@]}"; do
    kill -9 $(pgrep -P "$p") "$p" 2>/dev/null || true
    { wait "$p"; } 2>/dev/null || true # reaped quietly (no "Killed" line)
  done
  PIDS=()
}
trap 'stop; [[ -f $WORK/up.pid ]] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=18600
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/up.pid; error_log $WORK/up.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $WORK/t1; proxy_temp_path $WORK/t2; fastcgi_temp_path $WORK/t3; uwsgi_temp_path $WORK/t4; scgi_temp_path $WORK/t5;
  server { listen 127.0.0.1:$PORT; location / { default_type text/plain; return 200 "hello from the upstream\n"; }
    location ~ /16k\$ { root $WORK/www; try_files /16k.bin =404; } } }
NGINX
mkdir -p "$WORK/www" && head -c 16384 /dev/zero | tr '\0' x > "$WORK/www/16k.bin"
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" >/dev/null 2>&1 &
"$NODE" -e "import('$HERE/bench/lib/targets.ts').then((m) => m.writeEdgegateConfig('$WORK', $PORT))"
listen() { echo $((18610 + 10 * $1)); }
cpu() { for p in $1 $(pgrep -P "$1"); do awk '{s+=$14+$15} END {printf "%d ", s}' "/proc/$p/stat"; done | awk '{for(i=1;i<=NF;i++) t+=$i; print t}'; }
burst() { # checkout index, seconds
  local before after out requests
  before=$(cpu "${PIDS[$1]}")
  out=$(taskset -c 0 wrk -t1 -c50 -d"$2s" -H 'Host: shop.example.com' "http://127.0.0.1:$(listen "$1")/shop/orders/v2/${BODY:-small}")
  after=$(cpu "${PIDS[$1]}")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "${DIRS[$1]}: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(((after - before) * 10000 / requests)) µs CPU/request"
}
for s in $(seq "$SETS"); do
  echo "set $s" >> "$OUT"
  for k in $(seq 0 $((N - 1))); do
    i=$(((k + s) % N)) # the start order rotates too
    (cd "${DIRS[i]}" && exec taskset -c 1 "$NODE" cmd/edgegate.ts run --listen "127.0.0.1:$(listen "$i")" \
      --admin "127.0.0.1:$(($(listen "$i") + 5))" --routes "$WORK/edgegate/routes" \
      --catalog "$WORK/edgegate/catalog.yaml" --datacenter dc1 --log-level warn --workers 1 --access-log on \
      --access-log-sample 0.01 >"$WORK/eg-$i.log" 2>&1) &
    PIDS[i]=$!
  done
  for i in "${!DIRS[@]}"; do
    for _ in $(seq 150); do curl -sf "127.0.0.1:$(($(listen "$i") + 5))/readyz" >/dev/null && break; sleep 0.2; done
  done
  for i in "${!DIRS[@]}"; do burst "$i" 3 >/dev/null; done
  for r in $(seq "$ROUNDS"); do
    for k in $(seq 0 $((N - 1))); do
      if ((r % 2)); then burst $(((k + r) % N)) "$DUR"; else burst $(((N - 1 - k + r) % N)) "$DUR"; fi
    done >> "$OUT"
  done
  stop
done
"$NODE" "$HERE/bench/ab-stats.ts" --base "${DIRS[0]}" "$OUT"
