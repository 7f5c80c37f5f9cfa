#!/usr/bin/env bash
# Sluice against nginx on compare.sh's workload, HTTP/1.1 and HTTP/2, with
# one or more `sluice` binaries side by side (a build before a change and
# one after, say), interleaved round by round, on loopback.
#
#   bash benches/proxy/vs-nginx.sh                                 # target/release/sluice vs nginx
#   SLUICES="before=/work/before/target/release/sluice after=target/release/sluice" \
#     bash benches/proxy/vs-nginx.sh
#   PERF=1 DURATION=8 ROUNDS=1 bash benches/proxy/vs-nginx.sh     # also perf-record the first Sluice
#
# Same as compare.sh (whose generator, templates and nginx configuration it
# reuses): one policy of ROUTES routes (default 1,000) compiled by each
# binary, nginx.conf derived from it by the peer_configs example, the
# upstream nginx answering `return 200 "ok\n"`, every request to the last
# route; each Sluice (`SLUICE_WORKERS=WORKERS`, plaintext listener,
# `app-protocol = "http1"` so that HTTP/2 clients are forwarded over
# HTTP/1.1 as nginx does) and nginx (master + WORKERS workers) forward to
# it. Per round, over every target in a rotating order:
#   - h1 fixed: h2load --h1 -c1 --rps RATE for DURATION s (+1 s warm-up): p50, p99;
#   - h1 saturation: wrk -t1 -cWRK_CONNS for DURATION s;
#   - h2 fixed (H2=1): h2load -c1 -m1 --rps RATE, h2c prior knowledge (nginx:
#     a second nginx with `listen ... http2`): p50, p99;
#   - h2 saturation (H2=1): h2load -t1 -cWRK_CONNS -m1 for DURATION s;
#   and the proxy's CPU seconds per 100,000 requests for each.
# Knobs: SLUICES ("label=path ..."), ROUTES, WORKERS (2), ROUNDS (3),
# DURATION (10), RATE (1000), WRK_CONNS (32), H2 (1), PERF (0: with 1,
# `perf record -g` on the first Sluice during an extra h1 saturation run
# before the rounds, report in the raw folder), PORT_BASE (17000).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy/compare
. "$root/benches/proxy/lib.sh"

load_knobs 1
workers=${WORKERS:-2}
n=${ROUTES:-1000}
h2=${H2:-1}
port_base=${PORT_BASE:-17000}
app_port=$port_base

ensure_tools
[[ -n ${SLUICES:-} ]] || build_binaries
[[ -x $root/target/release/examples/peer_configs ]] || cargo build --release -q -p sluice-benches --example peer_configs
peer_configs=$root/target/release/examples/peer_configs
read -r -a specs <<<"${SLUICES:-after=${sluice}}"

make_work sluice-vs-nginx
mkdir -p "$work/upstream" "$work/nginx" "$work/nginx-h2"
fill "$here/upstream.conf.in" TEMP_PATHS="$(nginx_temp_paths "$work/upstream")" DIR="$work/upstream" \
  APP_PORT="$app_port" >"$work/upstream/nginx.conf"
start_nginx "$work/upstream"
wait_for_answer "http://127.0.0.1:$app_port/" 10 || die "the upstream did not start"

bash "$here/gen-policy.sh" "$n" >"$work/compare.sluice"
"$peer_configs" "$work/compare.sluice" "$work/generated" 2>"$work/peer_configs.txt" ||
  { cat "$work/peer_configs.txt" >&2; die "peer_configs failed"; }

declare -A port_of pid_of
targets=()
user=""
[[ $(id -u) != 0 ]] || user="user root;"
k=0
for spec in "${specs[@]}"; do
  label=${spec%%=*} bin=${spec#*=}
  k=$((k + 1))
  d=$work/$label
  mkdir -p "$d"
  # Each binary compiles the policy itself (bundle formats differ between builds).
  "$bin" compile "$work/compare.sluice" -o "$d/compare.bundle" >"$d/compile.txt" 2>&1 ||
    { cat "$d/compile.txt" >&2; die "$label: compile failed"; }
  cat >"$d/proxy.toml" <<EOF
[policy]
bundle = "$d/compare.bundle"

[admin]
listen = "127.0.0.1:$((port_base + 10 * k + 1))"

[[inbound]]
listen = "127.0.0.1:$((port_base + 10 * k))"
port = 8080
app = "127.0.0.1:$app_port"
tls = "plaintext"
app-protocol = "http1"

[limits]
drain-timeout-ms = 2000
EOF
  SLUICE_WORKERS=$workers SLUICE_LOG=${SLUICE_LOG:-info} "$bin" proxy --config "$d/proxy.toml" 2>"$d/sluice.log" &
  pids+=($!)
  pid_of[$label]=$!
  port_of[$label]=$((port_base + 10 * k))
  targets+=("$label")
  wait_for "http://127.0.0.1:$((port_base + 10 * k + 1))/ready" 30 || { tail "$d/sluice.log" >&2; die "$label did not become ready"; }
done
for v in nginx nginx-h2; do
  listen="127.0.0.1:$((port_base + 3))"
  [[ $v == nginx ]] || listen="127.0.0.1:$((port_base + 4)) http2"
  fill "$work/generated/nginx.conf" TEMP_PATHS="$(nginx_temp_paths "$work/$v")" DIR="$work/$v" WORKERS="$workers" \
    USER="$user" LISTEN="$listen" UPSTREAM="127.0.0.1:$app_port" >"$work/$v/nginx.conf"
  start_nginx "$work/$v"
  pid_of[$v]=$nginx_started
done
port_of[nginx]=$((port_base + 3))
port_of[nginx-h2]=$((port_base + 4))
targets+=(nginx)
wait_for_answer "http://127.0.0.1:${port_of[nginx]}/" 10 || die "nginx did not start"
sleep 0.5

last=$(printf '%04d' $((n - 1)))
url_of() { echo "http://127.0.0.1:${port_of[$1]}/api/s$last/items/42"; }
h2_url_of() { [[ $1 == nginx ]] && echo "http://127.0.0.1:${port_of[nginx-h2]}/api/s$last/items/42" || url_of "$1"; }
procs_of() { # TARGET: its PIDs (nginx: master and workers of the instance serving KIND)
  local p=${pid_of[$1]}
  echo "$p"
  [[ $1 == nginx* ]] && { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$p" '$4 == p {print $1}' || true
}
ticks() { local p s=0; for p in $(procs_of "$1"); do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
per100k() { awk -v t="$1" -v n="$2" -v hz="$clk_tck" 'BEGIN{ if (n > 0) printf "%.2f", t / hz / n * 100000; else print "NA" }'; }
# Checks: each target answers the measured request 200, an unknown path 404, over both protocols.
for t in "${targets[@]}"; do
  for proto in --http1.1 --http2-prior-knowledge; do
    u=$(url_of "$t"); [[ $proto == --http1.1 ]] || u=$(h2_url_of "$t")
    got=$(curl -sS -o /dev/null -w '%{http_code}' "$proto" "$u")
    [[ $got == 200 ]] || die "$t $proto answered $got to $u"
    got=$(curl -sS -o /dev/null -w '%{http_code}' "$proto" "${u%%/api*}/nope")
    [[ $got == 404 ]] || die "$t $proto answered $got to /nope"
  done
done
log "checks agree (200 on the route, 404 elsewhere, HTTP/1.1 and h2c)"

exec 9>/tmp/sluice-bench.lock
log "waiting for /tmp/sluice-bench.lock"
flock 9
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
init_results

if [[ ${PERF:-0} == 1 ]]; then
  t=${targets[0]}
  wrk_saturate "$work/raw/perf-wrk.txt" "$(url_of "$t")" &
  wrk_pid=$!
  sleep 1
  perf record -g -o "$work/perf.data" -p "${pid_of[$t]}" -- sleep $((dur - 2)) >"$work/raw/perf-record.txt" 2>&1 || true
  wait "$wrk_pid" || true
  perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0 2>/dev/null \
    >"$work/perf-report.txt" || true
  log "perf report: $work/perf-report.txt ($(wrk_rps "$work/raw/perf-wrk.txt") req/s under perf)"
  # The samples grouped by where the time goes (by symbol name).
  grep '%' "$work/perf-report.txt" | grep -v '^#' | awk '
    { pct = $1; sub("%", "", pct); dso = $2; sym = ""; for (i = 4; i <= NF; i++) sym = sym " " $i; g = "other"
      if (dso ~ /kernel/) {
        if (sym ~ /futex|schedule|finish_task_switch|try_to_wake_up|ttwu|enqueue|dequeue|pick_next|update_curr|update_load|select_task|switch_to|psi_|sched|set_next|put_prev|idle/) g = "kernel: scheduler, futex, context switches"
        else if (sym ~ /epoll|ep_/) g = "kernel: epoll"
        else if (sym ~ /_raw_spin_unlock_irqrestore/) g = "kernel: _raw_spin_unlock_irqrestore (socket wake-ups)"
        else g = "kernel: TCP/IP over loopback, system calls, copies"
      } else if (dso ~ /libc/) {
        if (sym ~ /malloc|free|realloc|calloc|_int_|tcache|arena/) g = "allocator (glibc)"; else g = "libc: memmove, system call wrappers"
      } else if (dso ~ /vdso/) g = "clock_gettime (vdso)"
      else if (sym ~ /mi_|mimalloc/) g = "allocator (mimalloc)"
      else if (sym ~ /tokio::runtime::scheduler|tokio::runtime::task|transition_to|Harness|RawTask|worker::|Notified|inject|context::with_scheduler|thread_rng/) g = "tokio: scheduler, tasks"
      else if (sym ~ /tokio::runtime::io|ScheduledIo|Registration|poll_read_priv|poll_write_priv|tokio::net|mio::/) g = "tokio: I/O driver"
      else if (sym ~ /tokio::time|tokio::runtime::time|Sleep|TimerEntry|Instant/) g = "tokio: timers, clocks"
      else if (sym ~ /tokio::sync|tokio_util|mpsc|oneshot|AtomicWaker|want::|Semaphore|TrackedFuture/) g = "tokio: channels, wakers, cancellation"
      else if (sym ~ /hyper|http::|httparse|h2::|http_body|bytes::|BytesMut/) g = "hyper, http, httparse, bytes"
      else if (sym ~ /sluice_runtime/) g = "sluice_runtime: the policy decision"
      else if (sym ~ /prometheus|metrics/) g = "metrics"
      else if (sym ~ /tracing/) g = "tracing"
      else if (sym ~ /sluice_proxy/) g = "sluice_proxy: request handling, forwarding, framing"
      else if (sym ~ /core::|alloc::|std::|hashbrown|__rust/) g = "std, core, alloc (hashing, formatting, copies)"
      s[g] += pct }
    END { for (k in s) printf "%6.2f%%  %s\n", s[k], k }' | sort -rn >"$work/perf-groups.txt"
  cat "$work/perf-groups.txt" >&2
  # System calls and context switches per request, each proxy under wrk.
  for t in "${targets[@]}"; do
    wrk_saturate "$work/raw/stat-wrk-$t.txt" "$(url_of "$t")" &
    wrk_pid=$!
    sleep 1
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$(procs_of "$t" | paste -sd,)" -- sleep $((dur - 2)) \
      2>"$work/raw/stat-$t.txt" >/dev/null || true
    wait "$wrk_pid" || true
    awk -F, -v t="$t" -v rps="$(wrk_rps "$work/raw/stat-wrk-$t.txt")" -v s=$((dur - 2)) \
      '$3 ~ /sys_enter/ {sc = $1} $3 ~ /context-switches/ {cs = $1}
       END {printf "%s: %.0f req/s; per request: %.2f system calls, %.2f context switches\n", t, rps, sc / (rps * s), cs / (rps * s)}' \
      "$work/raw/stat-$t.txt" | tee -a "$work/perf-stat.txt" >&2
  done
fi

run() { # ROUND TARGET KIND
  local r=$1 t=$2 kind=$3 out=$work/raw/$3-$2-r$1 c0 c1 n p50 p99 pt=$2
  [[ $t == nginx && $kind == h2_* ]] && pt=nginx-h2
  c0=$(ticks "$pt")
  case $kind in
    h1_fixed) h2load_fixed "$out.txt" "$out.log" "$(url_of "$t")" ;;
    h2_fixed)
      timeout $((dur + 60)) h2load -t1 -c1 -m1 --rps "$rate" -D "$dur" --warm-up-time=1 --log-file="$out.log" \
        "$(h2_url_of "$t")" >"$out.txt" 2>&1 || true ;;
    h1_sat) wrk_saturate "$out.txt" "$(url_of "$t")" ;;
    h2_sat)
      timeout $((dur + 60)) h2load -t1 -c"$wrk_conns" -m1 -D "$dur" "$(h2_url_of "$t")" >"$out.txt" 2>&1 || true ;;
  esac
  c1=$(ticks "$pt")
  case $kind in
    *_fixed)
      read -r p50 p99 _ n < <(percentiles "$out.log")
      record "$r" "$t" "${kind}_p50" "$p50"
      record "$r" "$t" "${kind}_p99" "$p99"
      record "$r" "$t" "${kind}_bad" "$(h2load_bad "$out.txt")"
      record "$r" "$t" "${kind}_cpu" "$(per100k $((c1 - c0)) $((n * (dur + 1) / dur)))"
      log "round $r, $kind, $t: p50 $p50 µs, p99 $p99 µs ($n answers)" ;;
    h1_sat)
      n=$(wrk_requests "$out.txt")
      record "$r" "$t" h1_sat_rps "$(wrk_rps "$out.txt")"
      record "$r" "$t" h1_sat_bad "$(wrk_bad "$out.txt")"
      record "$r" "$t" h1_sat_cpu "$(per100k $((c1 - c0)) "${n:-0}")"
      log "round $r, $kind, $t: $(wrk_rps "$out.txt") req/s" ;;
    h2_sat)
      n=$(awk '/^requests:/{print $8}' "$out.txt")
      record "$r" "$t" h2_sat_rps "$(awk '/^finished in/{gsub(",", ""); printf "%.0f", $4}' "$out.txt")"
      record "$r" "$t" h2_sat_bad "$(h2load_bad "$out.txt")"
      record "$r" "$t" h2_sat_cpu "$(per100k $((c1 - c0)) "${n:-0}")"
      log "round $r, $kind, $t: $(awk '/^finished in/{print $4}' "$out.txt") req/s" ;;
  esac
}
kinds=(h1_fixed h1_sat)
[[ $h2 == 1 ]] && kinds+=(h2_fixed h2_sat)
for ((r = 1; r <= rounds; r++)); do
  order=("${targets[@]:r % ${#targets[@]}}" "${targets[@]:0:r % ${#targets[@]}}")
  for kind in "${kinds[@]}"; do
    for t in "${order[@]}"; do run "$r" "$t" "$kind"; done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
flock -u 9

range() { # TARGET METRIC: median (min–max) over the rounds
  local vals
  vals=$(awk -F'\t' -v t="$1" -v m="$2" '$2 == t && $3 == m && $4 != "NA" && $4 != "" {print $4}' "$results" | sort -g)
  [[ -n $vals ]] || { echo NA; return; }
  echo "$(median "$1" "$2") ($(head -1 <<<"$vals")–$(tail -1 <<<"$vals"))"
}
{
  echo "Machine: $ncpu cores, $(cpu_model); load average $load_before at the start, $load_after at the end."
  echo "$n routes, WORKERS=$workers, $rounds round(s) of $dur s; medians (min–max over the rounds)."
  echo
  line="| |"; sep="|---|"
  for t in "${targets[@]}"; do line+=" $t |"; sep+="---:|"; done
  echo "$line"; echo "$sep"
  for m in h1_sat_rps h1_fixed_p50 h1_fixed_p99 h1_sat_cpu h1_fixed_cpu h2_sat_rps h2_fixed_p50 h2_fixed_p99 h2_sat_cpu h2_fixed_cpu; do
    [[ $h2 == 1 || $m == h1* ]] || continue
    line="| $m |"
    for t in "${targets[@]}"; do line+=" $(range "$t" "$m") |"; done
    echo "$line"
  done
  echo
  echo "Per round (target: h1 p99 µs, h1 req/s, h2 p99 µs, h2 req/s):"
  for ((r = 1; r <= rounds; r++)); do
    line="round $r:"
    for t in "${targets[@]}"; do
      line+=" $t $(awk -F'\t' -v r="$r" -v t="$t" '$1 == r && $2 == t && ($3 == "h1_sat_rps" || $3 == "h1_fixed_p99" || $3 == "h2_sat_rps" || $3 == "h2_fixed_p99") {printf "%s ", $4}' "$results");"
    done
    echo "$line"
  done
} | tee "$work/table.md"
for t in "${targets[@]}"; do
  for kind in "${kinds[@]}"; do
    [[ $(total "$t" "${kind}_bad") == 0 ]] || log "warning: $t answered $(total "$t" "${kind}_bad") requests badly in $kind"
  done
done
