#!/usr/bin/env bash
# How far Node can go at all: nginx as the proxy, bench/floor-proxy.ts in its two modes (the least a Node process on
# Node's parser does to proxy a GET) and edgegate's worker (bench/ab-worker.sh), in alternating rounds, each under
# `wrk -t1 -c50` for DUR seconds (default 6) after a 2 s warm-up; the proxy on CPU 1, the nginx upstream and wrk on
# CPU 0 (as `npm run bench`). Prints each round and the medians: requests/s and the proxy's CPU µs per request
# (user + system, from /proc/PID/stat).
#
#   ROUNDS=3 DUR=6 bench/floor.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-6}
NODE="$HERE/node_modules/.bin/node"
WORK=$(mktemp -d /tmp/edgegate-floor.XXXXXX)
UP=18300 NGX=18301 FLOOR=18302
cleanup() {
  for f in "$WORK"/*.pid; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/up.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/up.pid; error_log $WORK/up.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; client_body_temp_path $WORK/u1; proxy_temp_path $WORK/u2;
  fastcgi_temp_path $WORK/u3; uwsgi_temp_path $WORK/u4; scgi_temp_path $WORK/u5;
  server { listen 127.0.0.1:$UP; location / { default_type text/plain; return 200 "hello from the upstream\n"; } } }
NGINX
# The proxy configuration of `npm run bench` (bench/lib/targets.ts, nginxProxyConf).
cat > "$WORK/px.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/px.pid; error_log $WORK/px.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; client_body_temp_path $WORK/p1; proxy_temp_path $WORK/p2;
  fastcgi_temp_path $WORK/p3; uwsgi_temp_path $WORK/p4; scgi_temp_path $WORK/p5;
  upstream up { server 127.0.0.1:$UP; keepalive 128; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$NGX backlog=4096; location / { proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme; } } }
NGINX
taskset -c 0 nginx -c "$WORK/up.conf" -p "$WORK" >/dev/null 2>&1 &
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# measure NAME PID PORT: one round against the proxy PID listening on PORT.
measure() {
  local url=http://127.0.0.1:$3/ out t0 t1 n
  taskset -c 0 wrk -t1 -c50 -d2s "$url" >/dev/null
  t0=$(ticks "$2")
  out=$(taskset -c 0 wrk -t1 -c50 -d"${DUR}s" "$url")
  t1=$(ticks "$2")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%s %s %.1f\n' "$1" "$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')" \
    "$(awk -v t=$((t1 - t0)) -v n="$n" 'BEGIN {print t * 10000 / n}')" | tee -a "$WORK/rounds"
}
wait_port() { for _ in $(seq 100); do curl -sf "127.0.0.1:$1/" >/dev/null && return; sleep 0.1; done; }
for r in $(seq "$ROUNDS"); do
  taskset -c 1 nginx -c "$WORK/px.conf" -p "$WORK" >/dev/null 2>&1 &
  wait_port $NGX
  measure nginx "$(pgrep -P "$(cat "$WORK/px.pid")")" $NGX
  kill "$(cat "$WORK/px.pid")"
  for mode in relay rebuild; do
    taskset -c 1 "$NODE" "$HERE/bench/floor-proxy.ts" $FLOOR $UP $mode &
    echo $! > "$WORK/floor.pid"
    wait_port $FLOOR
    measure "floor-$mode" "$(cat "$WORK/floor.pid")" $FLOOR
    kill "$(cat "$WORK/floor.pid")" && wait "$(cat "$WORK/floor.pid")" 2>/dev/null || true
    rm "$WORK/floor.pid"
  done
  DUR=$DUR "$HERE/bench/ab-worker.sh" "$HERE" 2>/dev/null | awk -v r="$r" '/req\/s/ {
    printf "edgegate %d %s\n", $2, $4 }' | tee -a "$WORK/rounds"
done
echo "medians of $ROUNDS rounds (req/s, CPU µs per request of the proxy process; edgegate: primary + worker):"
sort -k1,1 "$WORK/rounds" | awk '{k[$1] = k[$1] " " $2 ":" $3} END {for (t in k) print t, k[t]}' |
  "$NODE" -e "let s='';process.stdin.on('data',(d)=>s+=d).on('end',()=>{const med=(a)=>a.sort((x,y)=>x-y)[a.length>>1];
    const rows=s.trim().split('\n').map((l)=>{const [t,...v]=l.trim().split(/\s+/);const p=v.map((x)=>x.split(':').map(Number));
      return {t,rps:med(p.map((x)=>x[0])),cpu:med(p.map((x)=>x[1]))}});const ngx=rows.find((r)=>r.t==='nginx');
    for (const r of rows) console.log(r.t.padEnd(14), String(r.rps).padStart(7), 'req/s', (r.rps/ngx.rps).toFixed(2)+'× nginx',
      String(r.cpu).padStart(6), 'µs/req', (r.cpu/ngx.cpu).toFixed(2)+'× nginx CPU')})"
