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
# The upstream and the nginx proxy exactly as `npm run bench` configures them (bench/lib/targets.ts).
"$NODE" -e "import('$HERE/bench/lib/targets.ts').then((m) => { const fs = require('node:fs');
  fs.writeFileSync('$WORK/up.conf', m.upstreamConf('$WORK', $UP));
  fs.writeFileSync('$WORK/px.conf', m.nginxProxyConf('$WORK', $NGX, $UP)); })"
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
wait_port $UP
for _ in $(seq "$ROUNDS"); do
  taskset -c 1 nginx -c "$WORK/px.conf" -p "$WORK" >/dev/null 2>&1 &
  wait_port $NGX
  measure nginx "$(pgrep -P "$(cat "$WORK/nginx-proxy.pid")")" $NGX
  kill "$(cat "$WORK/nginx-proxy.pid")"
  for mode in relay rebuild; do
    taskset -c 1 "$NODE" "$HERE/bench/floor-proxy.ts" $FLOOR $UP $mode &
    echo $! > "$WORK/floor.pid"
    wait_port $FLOOR
    measure "floor-$mode" "$(cat "$WORK/floor.pid")" $FLOOR
    kill "$(cat "$WORK/floor.pid")" && wait "$(cat "$WORK/floor.pid")" 2>/dev/null || true
    rm "$WORK/floor.pid"
  done
  DUR=$DUR "$HERE/bench/ab-worker.sh" "$HERE" 2>/dev/null |
    awk '/req\/s/ { printf "edgegate %d %s\n", $2, $4 }' | tee -a "$WORK/rounds"
done
echo "medians of $ROUNDS rounds (req/s, CPU µs per request of the proxy process; edgegate: primary + worker):"
# $WORK/rounds: one "name req/s cpu" line per round.
"$NODE" -e "const rows = new Map();
  for (const l of require('node:fs').readFileSync('$WORK/rounds', 'utf8').trim().split('\n')) {
    const [name, rps, cpu] = l.split(' '); const r = rows.get(name) ?? { rps: [], cpu: [] };
    r.rps.push(Number(rps)); r.cpu.push(Number(cpu)); rows.set(name, r); }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  const ngx = rows.get('nginx'); const nr = med(ngx.rps), nc = med(ngx.cpu);
  for (const [name, r] of rows) { const rps = med(r.rps), cpu = med(r.cpu);
    console.log(name.padEnd(14), String(rps).padStart(7), 'req/s', (rps / nr).toFixed(2) + '× nginx',
      String(cpu).padStart(6), 'µs/req', (cpu / nc).toFixed(2) + '× nginx CPU'); }"
