#!/usr/bin/env bash
# bench/ab-worker.sh over HTTP/2: one worker behind the HTTPS listener, h2load through it, from one checkout:
# requests/s and CPU µs per request (primary + worker). For same-run A/B of a change on the HTTP/2 path:
#
#   mkdir /tmp/before && git archive BASE | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/node_modules
#   for i in 1 2 3; do bench/ab-worker-h2.sh /tmp/before; bench/ab-worker-h2.sh .; done
#
# Same table as `npm run bench` (bench/lib/targets.ts: 1,000 routes, metrics on, access log sampled 1 %): nginx
# upstream and h2load on CPU 0, edgegate (primary + 1 worker) on CPU 1, h2load -c10 -m10 for DUR seconds (default
# 8) after a 3 s warm-up. Needs nginx, h2load and openssl.
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
HERE=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-8}
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
"$NODE" -e "import('$HERE/bench/lib/targets.ts').then((m) => m.writeEdgegateConfig('$WORK', $PORT))"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" \
  -days 1 -subj /CN=shop.example.com -addext subjectAltName=DNS:shop.example.com >/dev/null 2>&1
cd "$REPO"
taskset -c 1 "$NODE" cmd/edgegate.ts run --listen 127.0.0.1:18280 --listen-tls 127.0.0.1:18243 \
  --tls-default-cert "$WORK/c.pem,$WORK/k.pem" --admin 127.0.0.1:18290 --routes "$WORK/edgegate/routes" \
  --catalog "$WORK/edgegate/catalog.yaml" --datacenter dc1 --log-level warn --workers 1 --access-log on \
  --access-log-sample 0.01 > "$WORK/eg.log" 2>&1 &
EG=$!
for _ in $(seq 150); do curl -sf 127.0.0.1:18290/readyz >/dev/null && break; sleep 0.2; done
URL=https://shop.example.com:18243/shop/orders/v2/small
H2=(h2load -c10 -m10 --connect-to=127.0.0.1:18243)
taskset -c 0 "${H2[@]}" -D 3 "$URL" >/dev/null
cpu() { for p in $EG $(pgrep -P $EG); do awk '{s+=$14+$15} END {printf "%d ", s}' "/proc/$p/stat"; done | awk '{for(i=1;i<=NF;i++) t+=$i; print t}'; }
before=$(cpu)
out=$(taskset -c 0 "${H2[@]}" -D "$DUR" "$URL")
after=$(cpu)
requests=$(echo "$out" | awk '/^requests:/ {print $8}')
echo "$REPO: $(echo "$out" | awk '/finished in/ {print $4}') req/s, $(( (after - before) * 10000 / requests )) µs CPU/request (primary + worker), $(echo "$out" | grep '^status codes')"
