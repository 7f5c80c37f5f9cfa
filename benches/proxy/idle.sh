#!/usr/bin/env bash
# Memory per idle keep-alive connection (issue 13, target 3): the Sluice
# proxy (inbound, plaintext) and, as a reference, nginx `proxy_pass` with
# pooled keep-alive upstream connections, each alone in turn in front of the
# same upstream, all on 127.0.0.1.
#
#   bash benches/proxy/idle.sh              # N = 2,000 and 8,000, 3 rounds (~5 minutes)
#   QUICK=1 bash benches/proxy/idle.sh      # N = 2,000, 1 round (smoke test)
#
# What it does:
#   1. installs nginx, curl and python3 if missing (lib.sh's ensure_tools),
#      builds `sluice` in release, raises `ulimit -n` to its hard limit;
#   2. compiles gen-policy.sh's 1,000-route policy; starts the upstream
#      (nginx.conf.in: one process answering 200 "ok\n" from memory) with
#      room for the connections;
#   3. for each round, each N (COUNTS, default "2000 8000") and each target
#      in turn, alone: starts the target fresh (`sluice proxy` with one
#      plaintext inbound listener, or nginx-proxy.conf.in: one process,
#      `keepalive 64` to the upstream), reads its VmRSS when ready, opens N
#      HTTP/1.1 keep-alive connections that each send one request and read
#      its 200 (idle-clients.py), then holds them idle; reads VmRSS with them
#      open 1 s and HOLD s (10) after the last one answered, closes them all,
#      reads VmRSS again SETTLE s (5) later, and stops the target;
#   4. prints a table: kB per idle connection ((VmRSS after HOLD s - idle) /
#      N; also after 1 s) and VmRSS after close / idle, as the median and the
#      range over the rounds; results.tsv and every log stay in a temp folder
#      whose path it prints.
#
# Sluice's figure includes its upstream side: each client connection has its
# own HTTP/1.1 connection to the application (inbound.rs), released after 5
# s without a byte on the client side, so right after opening N clients
# hold N upstream connections too; nginx holds at most 64 idle ones.
#
# SLUICE_BIN=PATH measures that `sluice` binary instead of building one.
# Extra Sluice targets, measured in the same rounds: SLUICE_BASE=PATH (another
# `sluice` binary, e.g. one built before a change: "sluice (base)") and
# SLUICE_ENV="VAR=VALUE ..." (the same binary with that environment, e.g.
# MALLOC_ARENA_MAX=2: "sluice (env)"; with SLUICE_BASE too, the base binary
# with it as well). Other knobs: QUICK, BUILD (debug: the
# binaries in target/debug), ROUNDS, COUNTS, HOLD, SETTLE, APP_PORT, PROXY_PORT,
# REF_PORT, ADMIN_PORT. Measurements hold /tmp/sluice-bench.lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy
. "$here/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
  rounds=${ROUNDS:-1}
  counts=(${COUNTS:-2000})
else
  rounds=${ROUNDS:-3}
  counts=(${COUNTS:-2000 8000})
fi
settle=${SETTLE:-5}
hold=${HOLD:-10}
((hold >= 2)) || die "HOLD must be at least 2 (seconds)"
app_port=${APP_PORT:-18180}
proxy_port=${PROXY_PORT:-15101}
ref_port=${REF_PORT:-15103}
admin_port=${ADMIN_PORT:-15991}
req_path=/api/s0500/items/42
max_n=0
for n in "${counts[@]}"; do ((n > max_n)) && max_n=$n; done

targets=(sluice nginx)
[[ -z ${SLUICE_BASE:-} ]] || targets+=(sluice-base)
[[ -z ${SLUICE_ENV:-} ]] || targets+=(sluice-env)
[[ -z ${SLUICE_ENV:-} || -z ${SLUICE_BASE:-} ]] || targets+=(sluice-base-env)
label_of() {
  case $1 in
    sluice) echo "Sluice proxy (plaintext)" ;;
    nginx) echo "nginx proxy_pass (keepalive 64)" ;;
    sluice-base) echo "Sluice (base: ${SLUICE_BASE##*/})" ;;
    sluice-env) echo "Sluice ($SLUICE_ENV)" ;;
    sluice-base-env) echo "Sluice (base, $SLUICE_ENV)" ;;
  esac
}

# ---------------------------------------------------------------- tools
ensure_tools python3
if [[ -n ${SLUICE_BIN:-} ]]; then
  [[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not an executable"
  sluice=$SLUICE_BIN
else
  build_binaries
fi
[[ -z ${SLUICE_BASE:-} || -x $SLUICE_BASE ]] || die "SLUICE_BASE=$SLUICE_BASE is not an executable"
ulimit -n "$(ulimit -Hn)"
# The proxy holds each client connection and its upstream one.
(($(ulimit -n) >= 2 * max_n + 1000)) || die "ulimit -n is $(ulimit -n); $((2 * max_n + 1000)) needed for N=$max_n"
ports_free "set APP_PORT, PROXY_PORT, REF_PORT or ADMIN_PORT" "$app_port" "$proxy_port" "$ref_port" "$admin_port"

make_work sluice-proxy-idle
mkdir -p "$work/nginx" "$work/nginx-ref" "$work/policy"
bash "$here/gen-policy.sh" 1000 >"$work/policy/bench.sluice"
"$sluice" compile "$work/policy/bench.sluice" -o "$work/bench.bundle" >"$work/compile.txt" 2>&1 ||
  { cat "$work/compile.txt" >&2; die "compile failed"; }
# The base binary reads the bundles it compiles (its format may be older).
if [[ -n ${SLUICE_BASE:-} ]]; then
  "$SLUICE_BASE" compile "$work/policy/bench.sluice" -o "$work/base.bundle" >"$work/compile-base.txt" 2>&1 ||
    { cat "$work/compile-base.txt" >&2; die "compile with SLUICE_BASE failed"; }
fi

# nginx's templates, with room for max_n connections (and the proxy's
# upstream connections) in one worker.
nginx_conf() { # TEMPLATE DIR
  fill "$1" TEMP_PATHS="$(nginx_temp_paths "$2")" DIR="$2" APP_PORT="$app_port" REF_PORT="$ref_port" |
    sed "s/worker_connections [0-9]*;/worker_connections $((2 * max_n + 1000));/
         s/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile $((2 * max_n + 1000));/" >"$2/nginx.conf"
}
nginx_conf "$here/nginx.conf.in" "$work/nginx"
start_nginx "$work/nginx"
wait_for "http://127.0.0.1:$app_port/" 10 || die "the upstream nginx did not start; see $work/nginx/error.log"
nginx_conf "$here/nginx-proxy.conf.in" "$work/nginx-ref"

cat >"$work/proxy.toml" <<TOML
# benches/proxy/idle.sh: one plaintext inbound listener for the policy's port 8080.
[policy]
bundle = "$work/bench.bundle"

[admin]
listen = "127.0.0.1:$admin_port"

[[inbound]]
listen = "127.0.0.1:$proxy_port"
port = 8080
app = "127.0.0.1:$app_port"
tls = "plaintext"

[limits]
max-connections = $((max_n + 1000))
drain-timeout-ms = 2000
# hyper's HTTP/1.1 header read timeout also runs while a keep-alive
# connection waits for its next request: at the default (10 s) the proxy
# closes idle clients 10 s after their answer, before HOLD s are over.
header-read-timeout-ms = $(((hold + 60) * 1000))
TOML
sed "s|^bundle = .*|bundle = \"$work/base.bundle\"|" "$work/proxy.toml" >"$work/proxy-base.toml"

# ---------------------------------------------------------------- one target at a time
target_pid=""
start_target() { # TARGET NAME: sets target_pid once it answers
  local t=$1 name=$2 bin=$sluice config=$work/proxy.toml
  case $t in
    nginx)
      start_nginx "$work/nginx-ref"
      target_pid=$nginx_started
      wait_for "http://127.0.0.1:$ref_port$req_path" 10 || die "the reference nginx did not start; see $work/nginx-ref/error.log"
      return
      ;;
    sluice-base | sluice-base-env) bin=$SLUICE_BASE config=$work/proxy-base.toml ;;
  esac
  local envs=()
  [[ $t != sluice-env && $t != sluice-base-env ]] || read -r -a envs <<<"$SLUICE_ENV"
  env "${envs[@]}" SLUICE_LOG=${SLUICE_LOG:-info} "$bin" proxy --config "$config" 2>"$work/$name.log" &
  target_pid=$!
  pids+=("$target_pid")
  wait_for "http://127.0.0.1:$admin_port/ready" 30 ||
    { tail -20 "$work/$name.log" >&2; die "the proxy did not become ready; see $work/$name.log"; }
}
stop_target() {
  stop_pid "$target_pid"
  local kept=() pid
  for pid in "${pids[@]}"; do [[ $pid == "$target_pid" ]] || kept+=("$pid"); done
  pids=("${kept[@]}")
}
target_port() { [[ $1 == nginx ]] && echo "$ref_port" || echo "$proxy_port"; }
rss() { awk '/^VmRSS:/{print $2}' "/proc/$target_pid/status"; }

measure() { # ROUND TARGET N
  local r=$1 t=$2 n=$3 name=$2-$3-r$1 idle open held upstream after client i line=""
  start_target "$t" "$name"
  sleep 1
  idle=$(rss)
  python3 "$here/idle-clients.py" 127.0.0.1 "$(target_port "$t")" "$req_path" "$n" >"$work/raw/$name.clients" 2>&1 &
  client=$!
  for ((i = 0; i < 1200; i++)); do
    line=$(head -1 "$work/raw/$name.clients" 2>/dev/null || true)
    [[ -z $line ]] || break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  [[ $line == "open $n 200=$n" ]] || { cat "$work/raw/$name.clients" >&2; die "$t: the $n clients did not all get 200 ($line)"; }
  sleep 1
  open=$(rss)
  sleep $((hold - 1))
  held=$(rss)
  upstream=$(ss -Htn state established "( dport = :$app_port )" | wc -l)
  kill -TERM "$client"
  wait "$client" || die "$t: the clients did not close cleanly (see $work/raw/$name.clients)"
  sleep "$settle"
  after=$(rss)
  stop_target
  record "$r" "$t.$n" idle "$idle"
  record "$r" "$t.$n" open "$open"
  record "$r" "$t.$n" held "$held"
  record "$r" "$t.$n" upstream "$upstream"
  record "$r" "$t.$n" after "$after"
  record "$r" "$t.$n" per_conn_1s "$(calc "printf \"%.2f\", ($open - $idle) / $n")"
  record "$r" "$t.$n" per_conn "$(calc "printf \"%.2f\", ($held - $idle) / $n")"
  record "$r" "$t.$n" after_ratio "$(ratio "$after" "$idle")"
  log "round $r, $t, N=$n: VmRSS idle $idle kB, open $open kB (1 s), $held kB (${hold} s), ${settle} s after close $after kB"
}

exec 9>/tmp/sluice-bench.lock
log "waiting for /tmp/sluice-bench.lock"
flock 9
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
init_results
for ((r = 1; r <= rounds; r++)); do
  for n in "${counts[@]}"; do
    for t in "${targets[@]}"; do measure "$r" "$t" "$n"; done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
flock -u 9

# ---------------------------------------------------------------- table
spread() { # TARGET METRIC [SCALE]: median (min–max) over the rounds, values divided by SCALE
  awk -F'\t' -v t="$1" -v m="$2" '$2 == t && $3 == m && $4 != "NA" {print $4}' "$results" | sort -g |
    awk -v s="${3:-1}" -v d="${4:-1}" '{ a[NR] = $1 / s }
      END { if (NR == 0) { print "NA"; exit }
        med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        f = "%." d "f"
        if (NR == 1) printf f "\n", med; else printf f " (" f "–" f ")\n", med, a[1], a[NR] }'
}
echo
echo "Machine: $ncpu cores, $(cpu_model); clients, upstream and proxy share them."
echo "Load average (1, 5, 15 min) when measuring started: $load_before; when it ended: $load_after."
echo "Tools: $("$nginx_bin" -v 2>&1 | awk '{print $3}'), $(python3 --version), $(rustc --version 2>/dev/null || echo rustc ?)."
echo
echo "| target | N | VmRSS idle (MiB) | with N open, ${hold} s idle (MiB) | kB per idle connection | kB per connection, 1 s after opening | ${settle} s after close (MiB) | after close / idle | upstream connections after ${hold} s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${counts[@]}"; do
  for t in "${targets[@]}"; do
    echo "| $(label_of "$t") | $n | $(spread "$t.$n" idle 1024 1) | $(spread "$t.$n" held 1024 1) | $(spread "$t.$n" per_conn 1 1) | $(spread "$t.$n" per_conn_1s 1 1) | $(spread "$t.$n" after 1024 1) | $(spread "$t.$n" after_ratio 1 2) | $(spread "$t.$n" upstream 1 0) |"
  done
done
echo
echo "Median (min–max) over $rounds round(s); each target started fresh, alone, for each N."
echo "Raw outputs (results.tsv, client outputs, logs): $work"
