#!/usr/bin/env bash
# The HTTP/2 twin of ab-worker.sh: one worker under h2load through the HTTPS listener, from one checkout —
# requests/s and CPU µs per request. How the admission change was measured (docs/benchmarks.md):
#
#   mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/
#   for i in 1 2 3; do bench/ab-worker-h2.sh /tmp/before; bench/ab-worker-h2.sh .; done
#
# Same table and upstream as ab-worker.sh (bench/lib/targets.ts, nginx on CPU 0), a self-signed certificate,
# edgegate (primary + 1 worker) on CPU 1, h2load on CPU 0: -c10 -m10 for N requests (default 100,000) after
# 10,000 to warm up. Needs nginx, h2load and openssl.
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
HERE=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100000}
WORK=$(mktemp -d /tmp/edgegate-ab-h2.XXXXXX)
trap 'kill -9 $(pgrep -P $EG) $EG 2>/dev/null || true; [[ -f $WORK/up.pid ]] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
NODE="$HERE/node_modules/.bin/node"
PORT=18200
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/up.pid; error_log $WORK/up.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $WORK/t1; proxy_temp_path $WORK/t2; fastcgi_temp_path $WORK/t3; uwsgi_temp_path $WORK/t4; scgi_temp_path $WORK/t5;
  server { listen 127.0.0.1:$PORT; location / { default_type text/plain; return 200 "hello from the upstream\n"; } } }
NGINX
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" >/dev/null 2>&1 &
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" \
  -days 2 -subj /CN=shop.example.com >/dev/null 2>&1
"$NODE" -e "import('$HERE/bench/lib/targets.ts').then((m) => m.writeEdgegateConfig('$WORK', $PORT))"
cd "$REPO"
# Load shedding off (as in the tests): on a busy machine it would answer some requests 503 and skew the A/B.
EDGEGATE_OVERLOAD_DELAY=0 taskset -c 1 "$NODE" cmd/edgegate.ts run --listen 127.0.0.1:18280 --listen-tls 127.0.0.1:18283 \
  --tls-default-cert "$WORK/c.pem,$WORK/k.pem" --admin 127.0.0.1:18290 --routes "$WORK/edgegate/routes" \
  --catalog "$WORK/edgegate/catalog.yaml" --datacenter dc1 --log-level warn --workers 1 --access-log on \
  --access-log-sample 0.01 > "$WORK/eg.log" 2>&1 &
EG=$!
for _ in $(seq 150); do curl -sf 127.0.0.1:18290/readyz >/dev/null && break; sleep 0.2; done
URL=https://shop.example.com:18283/shop/orders/v2/small
H2=(h2load -c10 -m10 --connect-to=127.0.0.1:18283)
taskset -c 0 "${H2[@]}" -n10000 "$URL" >/dev/null
cpu() { for p in $EG $(pgrep -P $EG); do awk '{s+=$14+$15} END {printf "%d ", s}' "/proc/$p/stat"; done | awk '{for(i=1;i<=NF;i++) t+=$i; print t}'; }
before=$(cpu)
out=$(taskset -c 0 "${H2[@]}" -n"$N" "$URL")
after=$(cpu)
ok=$(echo "$out" | awk '/^requests:/ {print $8}')
echo "$out" | grep -E "^(requests|status codes|finished)" >&2
echo "$REPO: $(echo "$out" | awk '/^finished in/ {print $4}') req/s, $(( (after - before) * 10000 / N )) µs CPU/request (primary + worker), $ok of $N succeeded"
# Gateway-generated answers and caught exceptions during the run (none expected).
curl -s 127.0.0.1:18290/metrics | grep -E '^edgegate_(gateway_errors|request_handler_errors)_total' | grep -v ' 0$' >&2 || true
