#!/usr/bin/env bash
# One worker under load, from one checkout: requests/s and CPU µs per request (HTTP/1.1 also prints the worker's
# user and system time per request apart, the young-generation figures of its scavenges, and its GC pauses by kind
# during the measured run). How the in-flight list fix and the admission change were measured (docs/benchmarks.md):
#
#   mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/
#   for i in 1 2 3; do bench/ab-worker.sh /tmp/before; bench/ab-worker.sh .; done          # HTTP/1.1, wrk
#   for i in 1 2 3; do PROTO=h2 bench/ab-worker.sh /tmp/before; PROTO=h2 bench/ab-worker.sh .; done  # HTTP/2
#
# Same setup as `npm run bench` for edgegate (bench/lib/targets.ts: 1,000 routes, metrics on, access log sampled
# 1 %): nginx upstream and the load generator on CPU 0, edgegate (primary + 1 worker) on CPU 1.
#   PROTO=h1 (default): wrk -t1 -c50 for DUR seconds (default 8) after a 3 s warm-up, plain listener.
#   PROTO=h2: h2load -c10 -m10 for N requests (default 100,000) after 10,000 to warm up, through the HTTPS
#   listener with a self-signed certificate (load shedding off, as in the tests: on a busy machine it would answer
#   some requests 503 and skew the A/B).
# BODY=16k (h1): the 16 KiB answer instead of the small one (as `npm run bench`'s large body).
# ROUNDS=N GAP=S (h1): N measured runs against the same gateway, idle S seconds between them (default 1 and 0), each
#   printed; the summary lines are the last run's. Whether a worker slows down with its history or with idling.
#   h1 also prints the function-call interrupts CPU 0 received per request (the wake-ups of wrk and the upstream).
# RATE=N (h1): latency at a fixed N requests/s instead of throughput — bench/pace (built by `npm run bench`,
#   coordinated-omission corrected, 50 connections as `npm run bench`) for DUR seconds; prints its percentiles, the
#   gateway's CPU per request over the paced run (the worker's user and system time apart) and
#   the worker's GC pauses during the run (count, total, longest, by kind).
# EXTRA_ARGS: more `run` flags (bench/ab-tracing.sh passes the tracing ones).
# NODE_FLAGS (h1): more Node flags for the gateway's processes, e.g. `--perf-basic-prof-only-functions` so that
#   `perf record -p WORKER_PID` names JavaScript functions (docs/benchmarks.md, "Issue 17, step 3").
# PROFILE=DIR (h1): V8 CPU profiles of the primary and the worker over the measured run only, written to DIR
#   (bench/lib/profile-hook.mjs) with the run's request count in DIR/requests; summarize and compare two builds
#   with bench/cpuprofile-self.ts.
#   With HEAP=1: V8's sampling heap profiles instead (the same hook, DIR/*.heapprofile): what the
#   run allocated, per function; bytes per request with bench/heapprofile-self.ts.
# Needs nginx and wrk (npm run bench installs them); h2 also h2load and openssl.
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
HERE=$(cd "$(dirname "$0")/.." && pwd)
PROTO=${PROTO:-h1}
DUR=${DUR:-8}
N=${N:-100000}
ROUNDS=${ROUNDS:-1}
GAP=${GAP:-0}
WORK=$(mktemp -d /tmp/edgegate-ab.XXXXXX)
chmod 755 "$WORK" # nginx workers (another user) read the 16 KiB file from it
# SIGKILL, not a drain: a draining gateway would hold the port into the next run.
trap 'kill -9 $(pgrep -P $EG) $EG 2>/dev/null || true; [[ -f $WORK/up.pid ]] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
NODE="$HERE/node_modules/.bin/node"
case $PROTO in h1) BASE=${BASE:-18100} ;; h2) BASE=${BASE:-18200} ;; *) echo "PROTO must be h1 or h2" >&2; exit 2 ;; esac
PORT=$BASE LISTEN=$((BASE + 80)) TLS=$((BASE + 83)) ADMIN=$((BASE + 90))
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
ARGS=(--listen "127.0.0.1:$LISTEN" --admin "127.0.0.1:$ADMIN" --routes "$WORK/edgegate/routes"
  --catalog "$WORK/edgegate/catalog.yaml" --datacenter dc1 --log-level warn --workers 1 --access-log on
  --access-log-sample 0.01)
# shellcheck disable=SC2206 # EXTRA_ARGS is a list of flags, split on purpose
ARGS+=(${EXTRA_ARGS:-})
if [[ $PROTO == h2 ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" \
    -days 2 -subj /CN=shop.example.com >/dev/null 2>&1
  ARGS+=(--listen-tls "127.0.0.1:$TLS" --tls-default-cert "$WORK/c.pem,$WORK/k.pem")
  export EDGEGATE_OVERLOAD_DELAY=0
else
  echo "import v8 from 'node:v8'; v8.setFlagsFromString('--trace-gc-nvp');" > "$WORK/gc.mjs"
  export NODE_OPTIONS="--import $WORK/gc.mjs ${NODE_FLAGS:-}"
  if [[ -n ${PROFILE:-} ]]; then
    mkdir -p "$PROFILE" && PROFILE=$(cd "$PROFILE" && pwd)
    PROFILE_EXT=cpuprofile
    [[ -n ${HEAP:-} ]] && PROFILE_EXT=heapprofile && export EDGEGATE_PROFILE_HEAP=1
    export NODE_OPTIONS="$NODE_OPTIONS --import $HERE/bench/lib/profile-hook.mjs" EDGEGATE_PROFILE_DIR=$PROFILE
  fi
fi
cd "$REPO"
taskset -c 1 "$NODE" cmd/edgegate.ts run "${ARGS[@]}" > "$WORK/eg.log" 2>&1 &
EG=$!
unset NODE_OPTIONS
for _ in $(seq 150); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.2; done
cpu() { for p in $EG $(pgrep -P $EG); do awk '{s+=$14+$15} END {printf "%d ", s}' "/proc/$p/stat"; done | awk '{for(i=1;i<=NF;i++) t+=$i; print t}'; }
# Function-call interrupts received by CPU 0 so far: on this VM, mostly wake-ups of wrk and the upstream sent from
# CPU 1 (docs/benchmarks.md, "Issue 17, step 7").
ipis() { awk '$1 == "CAL:" {print $2}' /proc/interrupts; }
# The worker's user and system ticks (fields 14 and 15 of /proc/PID/stat), apart.
split() { awk '{print $14, $15}' "/proc/$(pgrep -P $EG | head -1)/stat"; }
if [[ $PROTO == h1 ]]; then
  URL=http://127.0.0.1:$LISTEN/shop/orders/v2/${BODY:-small}
  taskset -c 0 wrk -t1 -c50 -d3s -H 'Host: shop.example.com' "$URL" >/dev/null
  if [[ -n ${RATE:-} ]]; then
    PACE=$(ls -t "$HOME"/.cache/edgegate/bin/edgegate-pace-* 2>/dev/null | head -1)
    [[ -x $PACE ]] || { echo "bench/pace is not built: run npm run bench once" >&2; exit 2; }
    mark=$(wc -l < "$WORK/eg.log")
    # CPU of the gateway over the whole paced run, per request sent (the warm-up's, which pace does not record, too).
    WARMUP=2
    before=$(cpu)
    read -r u0 s0 < <(split)
    out=$(taskset -c 0 "$PACE" -url "$URL" -host shop.example.com -rate "$RATE" -duration "${DUR}s" -warmup "${WARMUP}s" \
      -connections 50)
    read -r u1 s1 < <(split)
    after=$(cpu)
    echo "$out" | TICKS=$((after - before)) U=$((u1 - u0)) S=$((s1 - s0)) "$NODE" -e "let s='';process.stdin.on('data',(d)=>s+=d).on('end',()=>{
        const r=JSON.parse(s);const l=r.latencyUs;const us=(t)=>(t*10000/(r.requests+$WARMUP*r.rate)).toFixed(1);
        const e=process.env;console.log('$REPO @ '+r.rate+'/s (achieved '+Math.round(r.achievedRate)+', '+r.errors+
        ' errors): p50 '+l.p50+' µs, p90 '+l.p90+', p99 '+l.p99+', p99.9 '+l.p999+', max '+l.max+'; '+us(e.TICKS)+
        ' µs CPU/request (primary + worker), worker '+us(e.U)+' µs user + '+us(e.S)+' µs system')})"
    # The worker's --trace-gc-nvp records logged during the paced run: GC pauses by kind.
    tail -n +"$((mark + 1))" "$WORK/eg.log" | "$NODE" "$HERE/bench/lib/gc-summary.mjs" pauses
    exit 0
  fi
  [[ -n ${PROFILE:-} ]] && kill -USR2 $EG $(pgrep -P $EG)
  mark=$(wc -l < "$WORK/eg.log")
  total=0
  for ((k = 1; k <= ROUNDS; k++)); do
    ((k > 1)) && sleep "$GAP" # the gateway idle between rounds, on purpose
    before=$(cpu)
    ipi0=$(ipis)
    read -r u0 s0 < <(split)
    out=$(taskset -c 0 wrk -t1 -c50 -d"${DUR}s" -H 'Host: shop.example.com' "$URL")
    read -r u1 s1 < <(split)
    ipi1=$(ipis)
    after=$(cpu)
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    total=$((total + requests))
    ((ROUNDS > 1)) && echo "round $k: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(((after - before) * 10000 / requests)) µs CPU/request"
  done
  if [[ -n ${PROFILE:-} ]]; then
    kill -USR2 $EG $(pgrep -P $EG)
    echo "$total" > "$PROFILE/requests"
    for _ in $(seq 50); do (($(find "$PROFILE" -name "*.$PROFILE_EXT" -newer "$PROFILE/requests" | wc -l) >= 2)) && break; sleep 0.2; done
  fi
  echo "$REPO: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(((after - before) * 10000 / requests)) µs CPU/request (primary + worker)"
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$requests" \
    'BEGIN {printf "worker: %.1f µs user + %.1f µs system per request\n", u * 10000 / n, s * 10000 / n}'
  awk -v i=$((ipi1 - ipi0)) -v n="$requests" \
    'BEGIN {printf "function-call interrupts to CPU 0 (wrk, the upstream): %.3f per request\n", i / n}'
  "$NODE" "$HERE/bench/lib/gc-summary.mjs" scavenges 6 < "$WORK/eg.log"
  # GC pauses by kind during the measured run (a mark-compact here is not start-up's).
  tail -n +"$((mark + 1))" "$WORK/eg.log" | "$NODE" "$HERE/bench/lib/gc-summary.mjs" pauses
else
  URL=https://shop.example.com:$TLS/shop/orders/v2/small
  H2=(h2load -c10 -m10 "--connect-to=127.0.0.1:$TLS")
  taskset -c 0 "${H2[@]}" -n10000 "$URL" >/dev/null
  before=$(cpu)
  out=$(taskset -c 0 "${H2[@]}" -n"$N" "$URL")
  after=$(cpu)
  ok=$(echo "$out" | awk '/^requests:/ {print $8}')
  echo "$out" | grep -E "^(requests|status codes|finished)" >&2
  echo "$REPO: $(echo "$out" | awk '/^finished in/ {print $4}') req/s, $(((after - before) * 10000 / N)) µs CPU/request (primary + worker), $ok of $N succeeded"
fi
# Gateway-generated answers and caught exceptions during the run (none expected).
curl -s "127.0.0.1:$ADMIN/metrics" | grep -E '^edgegate_(gateway_errors|request_handler_errors)_total' | grep -v ' 0$' >&2 || true
