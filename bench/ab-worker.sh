#!/usr/bin/env bash
# One worker under load, from one checkout: requests/s, CPU µs per request and the young-generation figures of
# its scavenges. How the in-flight list fix was measured (docs/benchmarks.md, "What was made faster"):
#
#   git worktree add /tmp/before 273064d && ln -s "$PWD/node_modules" /tmp/before/node_modules
#   for i in 1 2 3; do bench/ab-worker.sh /tmp/before; bench/ab-worker.sh .; done
#
# Same setup as `npm run bench` for edgegate (bench/lib/targets.ts: 1,000 routes, metrics on, access log sampled
# 1 %): nginx upstream and wrk on CPU 0, edgegate (primary + 1 worker) on CPU 1, wrk -t1 -c50 for DUR seconds
# (default 8) after a 3 s warm-up. Needs nginx and wrk (npm run bench installs them). EXTRA_ARGS: more `run` flags
# (bench/ab-tracing.sh passes the tracing ones).
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
HERE=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-8}
WORK=$(mktemp -d /tmp/edgegate-ab.XXXXXX)
# SIGKILL, not a drain: a draining gateway would hold the port into the next run.
trap 'kill -9 $(pgrep -P $EG) $EG 2>/dev/null || true; [[ -f $WORK/up.pid ]] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
NODE="$HERE/node_modules/.bin/node"
PORT=18100
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/up.pid; error_log $WORK/up.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $WORK/t1; proxy_temp_path $WORK/t2; fastcgi_temp_path $WORK/t3; uwsgi_temp_path $WORK/t4; scgi_temp_path $WORK/t5;
  server { listen 127.0.0.1:$PORT; location / { default_type text/plain; return 200 "hello from the upstream\n"; } } }
NGINX
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" >/dev/null 2>&1 &
"$NODE" -e "import('$HERE/bench/lib/targets.ts').then((m) => m.writeEdgegateConfig('$WORK', $PORT))"
echo "import v8 from 'node:v8'; v8.setFlagsFromString('--trace-gc-nvp');" > "$WORK/gc.mjs"
cd "$REPO"
NODE_OPTIONS="--import $WORK/gc.mjs" taskset -c 1 "$NODE" cmd/edgegate.ts run --listen 127.0.0.1:18180 \
  --admin 127.0.0.1:18190 --routes "$WORK/edgegate/routes" --catalog "$WORK/edgegate/catalog.yaml" \
  --datacenter dc1 --log-level warn --workers 1 --access-log on --access-log-sample 0.01 ${EXTRA_ARGS:-} > "$WORK/eg.log" 2>&1 &
EG=$!
for _ in $(seq 150); do curl -sf 127.0.0.1:18190/readyz >/dev/null && break; sleep 0.2; done
URL=http://127.0.0.1:18180/shop/orders/v2/small
taskset -c 0 wrk -t1 -c50 -d3s -H 'Host: shop.example.com' "$URL" >/dev/null
cpu() { for p in $EG $(pgrep -P $EG); do awk '{s+=$14+$15} END {printf "%d ", s}' "/proc/$p/stat"; done | awk '{for(i=1;i<=NF;i++) t+=$i; print t}'; }
before=$(cpu)
out=$(taskset -c 0 wrk -t1 -c50 -d"${DUR}s" -H 'Host: shop.example.com' "$URL")
after=$(cpu)
requests=$(echo "$out" | awk '/requests in/ {print $1}')
echo "$REPO: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(( (after - before) * 10000 / requests )) µs CPU/request (primary + worker)"
grep 'gc=s' "$WORK/eg.log" | tail -6 | grep -oE " (pause|promoted)=[0-9.]+" |
  awk -F= '{s[$1]+=$2; n[$1]++} END {printf "last scavenges: pause %.1f ms, promoted %.2f MB\n", s[" pause"]/n[" pause"], s[" promoted"]/n[" promoted"]/1e6}'
