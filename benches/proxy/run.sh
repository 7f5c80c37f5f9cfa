#!/usr/bin/env bash
# Inbound proxy benchmark: the Sluice proxy (plaintext and mTLS listeners)
# against a direct connection to the same upstream, side by side in one run,
# all on 127.0.0.1.
#
#   bash benches/proxy/run.sh            # 3 rounds, 10 s per run (~6 minutes)
#   QUICK=1 bash benches/proxy/run.sh    # 1 round, 2 s per run (smoke test)
#   PERF=1 bash benches/proxy/run.sh     # then profile the proxy with perf
#
# What it does:
#   1. installs wrk, h2load (nghttp2-client), nginx and curl if missing
#      (apt-get; with sudo when not root), builds `sluice` in release;
#   2. generates a policy with 1,000 HTTP routes (path prefix + methods) and
#      one `allow ... from any` rule per route (gen-policy.sh), compiles it;
#      `from any` because wrk and h2load cannot present client certificates:
#      over the mTLS listener they do a TLS 1.3 handshake without one;
#   3. makes a dev CA and the proxy's SVID with `sluice identity`;
#   4. starts the upstream: nginx, no master process, one worker, `return
#      200 "ok\n"` from memory (nginx.conf.in). A C server answering from
#      memory keeps the upstream's share of the 2 cores small and steady, so
#      the difference between direct and proxied runs is the proxy's;
#   5. starts `sluice proxy` with a plaintext and an mTLS listener, both for
#      the policy's port 8080 and forwarding to nginx (proxy.toml.in), waits
#      for /ready, and checks that each path answers nginx's 200 and that the
#      proxy enforces (an unknown path or method gets 404). Unless
#      REFERENCE=0, also starts a reference proxy that is not Sluice: nginx
#      with proxy_pass and pooled keep-alive upstream connections
#      (nginx-proxy.conf.in), one worker;
#   6. for each round, interleaved over direct, plaintext, mtls (and the
#      reference):
#      - fixed rate: h2load, HTTP/1.1 keep-alive, one connection, RATE req/s
#        (default 1,000) for DURATION s after 1 s of warm-up; p50, p99 and
#        p99.9 from the per-request latencies of its --log-file;
#      - saturation: wrk -t1 -c32 for DURATION s, HTTP/1.1 keep-alive
#        (https through wrk's OpenSSL for mtls);
#      for the proxied runs, the proxy's CPU seconds (utime + stime from
#      /proc/PID/stat) per 100,000 requests; for the saturation runs, how
#      many of the machine's cores were busy (/proc/stat) and the proxy's
#      and upstream's share of them;
#   7. reads VmRSS and VmHWM of the Sluice proxy from /proc/PID/status,
#      before and after the load; then (unless MEMORY_BUNDLES=0) restarts
#      it with two heavier 1,000-route bundles, gen-policy.sh's `mixed` and
#      the decision benchmarks' policy (benches/src/lib.rs, written out by a
#      throw-away program built in the temp folder), loads each the same way
#      on the plaintext listener and reads its memory again;
#   8. prints a markdown table of medians over the rounds and writes it,
#      with every raw output (results.tsv, h2load logs, wrk outputs, the
#      proxy's log and metrics), to a temp folder whose path it prints.
#
# Every process it starts is stopped on exit (lib.sh holds what the three
# proxy scripts share). Environment knobs: QUICK, BUILD (debug: the
# binaries in target/debug, if there), ROUNDS, DURATION, RATE, ROUTES, WRK_CONNS, PERF, REFERENCE, MEMORY_BUNDLES,
# APP_PORT, PLAIN_PORT, MTLS_PORT, REF_PORT, ADMIN_PORT, SLUICE_LOG (the proxy's log
# filter, `info` unless set; the proxy logs nothing per allowed request).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy
. "$here/lib.sh"

load_knobs 2
routes=${ROUTES:-1000}
app_port=${APP_PORT:-18080}
plain_port=${PLAIN_PORT:-15001}
mtls_port=${MTLS_PORT:-15002}
ref_port=${REF_PORT:-15003}
admin_port=${ADMIN_PORT:-15990}
trust_domain=bench.local
# Route r0500 (GET, HEAD; prefix /api/s0500): in the middle of the 1,000.
req_path=/api/s0500/items/42
targets=(direct plaintext mtls)
((routes > 500)) || { echo "error: ROUTES must be over 500 (the request takes route 500)" >&2; exit 1; }
[[ ${REFERENCE:-1} == 0 ]] || targets+=(nginx-ref)

# ---------------------------------------------------------------- tools
ensure_tools
build_binaries
"$sluice" proxy --help >/dev/null 2>&1 || die "this sluice has no \`proxy\` command"
"$sluice" identity --help >/dev/null 2>&1 || die "this sluice has no \`identity\` command"

ports_free "set APP_PORT, PLAIN_PORT, MTLS_PORT, REF_PORT or ADMIN_PORT" \
  "$app_port" "$plain_port" "$mtls_port" "$ref_port" "$admin_port"

make_work sluice-proxy-bench
mkdir -p "$work/nginx" "$work/nginx-ref" "$work/certs" "$work/policy"

# ---------------------------------------------------------------- policy and identity
log "policy: $routes routes, one allow-from-any rule each"
bash "$here/gen-policy.sh" "$routes" >"$work/policy/bench.sluice"
"$sluice" lint "$work/policy/bench.sluice" >"$work/lint.txt" 2>&1 || { cat "$work/lint.txt" >&2; die "lint failed"; }
"$sluice" compile "$work/policy/bench.sluice" -o "$work/bench.bundle" | tee "$work/compile.txt" >&2
bundle_bytes=$(stat -c %s "$work/bench.bundle")

log "identities: dev CA for $trust_domain, SVID for the proxy"
"$sluice" identity ca --trust-domain "$trust_domain" --out "$work/certs" >"$work/identity.txt" 2>&1
"$sluice" identity issue --ca "$work/certs" --id "spiffe://$trust_domain/ns/bench/sa/app" \
  --out "$work/certs/proxy" >>"$work/identity.txt" 2>&1

# ---------------------------------------------------------------- upstream (and reference proxy)
nginx_from() { # TEMPLATE DIR: writes DIR/nginx.conf and starts it (nginx_started)
  fill "$1" TEMP_PATHS="$(nginx_temp_paths "$2")" DIR="$2" APP_PORT="$app_port" REF_PORT="$ref_port" >"$2/nginx.conf"
  start_nginx "$2"
}
nginx_from "$here/nginx.conf.in" "$work/nginx"
nginx_pid=$nginx_started
wait_for "http://127.0.0.1:$app_port/" 10 || die "nginx did not start; see $work/nginx/error.log"
ref_pid=""
if [[ " ${targets[*]} " == *" nginx-ref "* ]]; then
  nginx_from "$here/nginx-proxy.conf.in" "$work/nginx-ref"
  ref_pid=$nginx_started
  wait_for "http://127.0.0.1:$ref_port/" 10 || die "the reference nginx did not start; see $work/nginx-ref/error.log"
fi

# ---------------------------------------------------------------- proxy
start_proxy() { # BUNDLE NAME: sets proxy_pid once /ready answers
  local bundle=$1 name=$2
  fill "$here/proxy.toml.in" BUNDLE="$bundle" CERTS="$work/certs" TRUST_DOMAIN="$trust_domain" \
    ADMIN_PORT="$admin_port" PLAIN_PORT="$plain_port" MTLS_PORT="$mtls_port" APP_PORT="$app_port" >"$work/$name.toml"
  log "sluice proxy --config $work/$name.toml"
  SLUICE_LOG=${SLUICE_LOG:-info} "$sluice" proxy --config "$work/$name.toml" 2>"$work/$name.log" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  wait_for "http://127.0.0.1:$admin_port/ready" 30 ||
    { tail -20 "$work/$name.log" >&2; die "the proxy did not become ready; see $work/$name.log"; }
}
stop_proxy() {
  stop_pid "$proxy_pid"
  local kept=() pid
  for pid in "${pids[@]}"; do [[ $pid == "$proxy_pid" ]] || kept+=("$pid"); done
  pids=("${kept[@]}")
}
start_proxy "$work/bench.bundle" proxy

url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$app_port$req_path" ;;
    plaintext) echo "http://127.0.0.1:$plain_port$req_path" ;;
    mtls) echo "https://127.0.0.1:$mtls_port$req_path" ;;
    nginx-ref) echo "http://127.0.0.1:$ref_port$req_path" ;;
  esac
}
pid_of() { # the proxy process of a target (none for direct)
  case $1 in
    plaintext | mtls) echo "$proxy_pid" ;;
    nginx-ref) echo "$ref_pid" ;;
    *) echo "" ;;
  esac
}

# Sanity: each path answers nginx's "ok"; the proxy enforces the policy.
check() { # NAME EXPECTED_STATUS EXPECTED_BODY curl args...
  local name=$1 want=$2 body=$3 got
  shift 3
  got=$(curl -sS --max-time 5 -o "$work/raw/check-$name.body" -w '%{http_code}' "$@" 2>>"$work/raw/checks.txt" || true)
  printf '%s: %s %s\n' "$name" "$got" "$(head -c 60 "$work/raw/check-$name.body" | tr '\n' ' ')" >>"$work/raw/checks.txt"
  [[ $got == "$want" ]] || die "check $name: status $got, expected $want"
  [[ -z $body ]] || grep -q "$body" "$work/raw/check-$name.body" || die "check $name: unexpected body"
}
for target in "${targets[@]}"; do
  # HTTP/1.1 over TLS, as wrk and h2load --h1 send it (curl would pick h2 by ALPN).
  check "$target" 200 '^ok$' -k --tlsv1.3 --http1.1 "$(url_of "$target")"
done
check plaintext-unknown-path 404 '' "http://127.0.0.1:$plain_port/nope"
check plaintext-wrong-method 404 '' -X POST "$(url_of plaintext)"
curl -skv --max-time 5 --tlsv1.3 --http1.1 -o /dev/null "$(url_of mtls)" 2>"$work/raw/mtls-handshake.txt" || true
tls_version=$(grep -o 'SSL connection using [^ ]*' "$work/raw/mtls-handshake.txt" | head -1 | awk '{print $4}')
[[ $tls_version == TLSv1.3 ]] || die "the mTLS listener did not negotiate TLS 1.3 (see $work/raw/mtls-handshake.txt)"
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$admin_port/ready" ||
  die "the proxy stopped answering after the checks (see $work/proxy.log)"

# ---------------------------------------------------------------- measurements
init_results
proxy_handled() { # requests the Sluice proxy has answered, from its own histogram
  curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics" |
    awk '/^sluice_request_duration_seconds_count /{print $2}'
}
proxy_mem() { mem_of_pid "$proxy_pid"; }

# Around a run: CPU ticks of the target's proxy, the upstream and the
# machine, and the Sluice proxy's request count.
span_start() { # TARGET
  read -r p_ticks0 p_sys0 < <(ticks_of "$(pid_of "$1")")
  read -r u_ticks0 _ < <(ticks_of "$nginx_pid")
  read -r m_busy0 m_total0 < <(machine_ticks)
  handled0=$(proxy_handled)
}
span_end() { # ROUND TARGET KIND REQUESTS_IF_NOT_SLUICE
  local round=$1 target=$2 kind=$3 n=$4 p_ticks1 p_sys1 u_ticks1 m_busy1 m_total1 handled1
  read -r p_ticks1 p_sys1 < <(ticks_of "$(pid_of "$target")")
  read -r u_ticks1 _ < <(ticks_of "$nginx_pid")
  read -r m_busy1 m_total1 < <(machine_ticks)
  handled1=$(proxy_handled)
  [[ $target == plaintext || $target == mtls ]] && n=$((handled1 - handled0))
  per100k() { awk -v t="$1" -v n="$n" -v hz="$clk_tck" \
    'BEGIN{ if (n > 0) printf "%.2f", t / hz / n * 100000; else print "NA" }'; }
  cores() { awk -v t="$1" -v all=$((m_total1 - m_total0)) -v c="$ncpu" \
    'BEGIN{ if (all > 0) printf "%.2f", t / all * c; else print "NA" }'; }
  if [[ $target != direct ]]; then
    record "$round" "$target" "cpu_$kind" "$(per100k $((p_ticks1 - p_ticks0)))"
    record "$round" "$target" "cpu_${kind}_sys" "$(per100k $((p_sys1 - p_sys0)))"
    record "$round" "$target" "cores_proxy_$kind" "$(cores $((p_ticks1 - p_ticks0)))"
  fi
  record "$round" "$target" "cores_machine_$kind" "$(cores $((m_busy1 - m_busy0)))"
  record "$round" "$target" "cores_upstream_$kind" "$(cores $((u_ticks1 - u_ticks0)))"
}

read -r rss_idle hwm_idle < <(proxy_mem)
log "proxy ready (pid $proxy_pid): VmRSS $rss_idle kB, VmHWM $hwm_idle kB before any load"

for ((round = 1; round <= rounds; round++)); do
  for target in "${targets[@]}"; do span_fixed_run "$round" "$target"; done
  for target in "${targets[@]}"; do span_sat_run "$round" "$target"; done
done
read -r rss_after hwm_after < <(proxy_mem)
threads=$(awk '/^Threads:/{print $2}' "/proc/$proxy_pid/status")
curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics" >"$work/raw/metrics-after.txt" || true

if [[ ${PERF:-0} == 1 ]] && command -v perf >/dev/null; then
  profile() { # NAME COMMAND...: perf on the proxy while COMMAND runs (not in the table)
    local name=$1 perf_pid stat_pid n0 n1
    shift
    log "perf: profiling the proxy under $name"
    n0=$(proxy_handled)
    perf record -F 999 -g -p "$proxy_pid" -o "$work/perf-$name.data" -- sleep "$dur" \
      >"$work/raw/perf-record-$name.txt" 2>&1 &
    perf_pid=$!
    perf stat -e raw_syscalls:sys_enter,context-switches -p "$proxy_pid" -o "$work/raw/perf-stat-$name.txt" \
      -- sleep "$dur" >/dev/null 2>&1 &
    stat_pid=$!
    "$@" >"$work/raw/perf-load-$name.txt" 2>&1 || true
    wait "$perf_pid" "$stat_pid" || true
    n1=$(proxy_handled)
    awk -v n=$((n1 - n0)) '/raw_syscalls:sys_enter|context-switches/ { gsub(",", "", $1); printf "%s per request: %.2f\n", $2, $1 / n }' \
      "$work/raw/perf-stat-$name.txt" >"$work/perf-stat-$name.txt" 2>/dev/null || true
    {
      perf report -i "$work/perf-$name.data" --stdio --no-children -g none --sort dso
      perf report -i "$work/perf-$name.data" --stdio --no-children -g none --sort dso,symbol --percent-limit 0.5
    } 2>/dev/null | grep '%' | sed 's/  */ /g; s/ - - *$//' >"$work/perf-$name.txt" || true
    log "perf report: $work/perf-$name.txt; $(tr '\n' ';' <"$work/perf-stat-$name.txt")"
  }
  profile fixed-plaintext h2load --h1 -t1 -c1 --rps "$rate" -D "$dur" "$(url_of plaintext)"
  profile wrk-plaintext wrk -t1 -c"$wrk_conns" -d"${dur}s" "$(url_of plaintext)"
  profile wrk-mtls wrk -t1 -c"$wrk_conns" -d"${dur}s" "$(url_of mtls)"
fi

# ---------------------------------------------------------------- memory with other bundles
# The same proxy, restarted with heavier 1,000-route bundles: gen-policy.sh's
# `mixed` one, and the decision benchmarks' policy (benches/src/lib.rs,
# written out by a throw-away program in the temp folder). Each gets the
# fixed-rate run and the wrk run on the plaintext listener, then its memory
# is read. The benchmarks' policy has no route for the request (404s).
mem_rows=()
mem_goals=()
verdict() { [[ $1 == 1 ]] && echo met || echo "**missed**"; }
memory_run() { # NAME BUNDLE DESCRIPTION
  local name=$1 bundle=$2 what=$3 rss0 hwm0 rss1 hwm1 answers
  start_proxy "$bundle" "proxy-$name"
  read -r rss0 hwm0 < <(proxy_mem)
  timeout $((dur + 60)) h2load --h1 -t1 -c1 --rps "$rate" -D "$dur" "$(url_of plaintext)" \
    >"$work/raw/memory-$name-fixed.txt" 2>&1 || true
  timeout $((dur + 60)) wrk -t1 -c"$wrk_conns" -d"${dur}s" "$(url_of plaintext)" \
    >"$work/raw/memory-$name-wrk.txt" 2>&1 || true
  read -r rss1 hwm1 < <(proxy_mem)
  answers=$(awk '/^status codes:/{print $3 " 2xx, " $7 " 4xx"}' "$work/raw/memory-$name-fixed.txt")
  mem_rows+=("| $what | $(stat -c %s "$bundle") | $(mib "$rss0") / $(mib "$hwm0") | $(mib "$rss1") / $(mib "$hwm1") | $answers |")
  mem_goals+=("- resident memory, $what bundle: VmHWM $(mib "$hwm1") MiB: $(verdict "$(awk -v k="$hwm1" 'BEGIN { print (k * 1024 < 20000000) }')")")
  stop_proxy
}
mem_rows+=("| gen-policy.sh $routes prefix (the runs above) | $bundle_bytes | $(mib "$rss_idle") / $(mib "$hwm_idle") | $(mib "$rss_after") / $(mib "$hwm_after") | all 2xx |")
if [[ ${MEMORY_BUNDLES:-1} == 1 ]]; then
  stop_proxy
  bash "$here/gen-policy.sh" "$routes" mixed >"$work/policy-mixed.sluice"
  "$sluice" compile "$work/policy-mixed.sluice" -o "$work/mixed.bundle" >&2
  memory_run mixed "$work/mixed.bundle" "gen-policy.sh $routes mixed"
  log "writing the decision benchmarks' $routes-route policy (benches/src/lib.rs)"
  write_bench_policy "$routes" "$work/policy-benches.sluice"
  "$sluice" compile "$work/policy-benches.sluice" -o "$work/benches.bundle" >&2
  memory_run benches "$work/benches.bundle" "benches/src/lib.rs generate($routes)"
fi

# ---------------------------------------------------------------- table
medians_by_target fixed_p50 fixed_p99 fixed_p999 fixed_rps fixed_bad sat_rps sat_bad \
  cpu_fixed cpu_fixed_sys cpu_sat cpu_sat_sys cores_machine_sat cores_proxy_sat cores_upstream_sat
bad() { calc "print ${med[$1.fixed_bad]} + ${med[$1.sat_bad]}"; }
cores() {
  local p="${med[$1.cores_proxy_sat]}"
  [[ $1 == direct ]] && p="-"
  echo "${med[$1.cores_machine_sat]} / $p / ${med[$1.cores_upstream_sat]}"
}
label_of() {
  case $1 in
    direct) echo "direct" ;;
    plaintext) echo "proxy plaintext" ;;
    mtls) echo "proxy mTLS" ;;
    nginx-ref) echo "nginx proxy_pass (reference)" ;;
  esac
}

table=$work/table.md
{
  table_head
  latency_and_throughput_rows
  metric=cpu_fixed row "proxy CPU s per 100k requests at $rate req/s (system)" cpu
  metric=cpu_sat row "proxy CPU s per 100k requests at saturation (system)" cpu
  row "cores busy at saturation: machine / proxy / upstream" cores
  row "non-2xx answers and socket errors (median per run)" bad
  echo
  echo "Sluice proxy memory (MiB; $threads threads), by $routes-route bundle:"
  echo
  echo "| bundle | bytes | VmRSS / VmHWM when ready | VmRSS / VmHWM after load | answers at $rate req/s |"
  echo "|---|---:|---:|---:|---|"
  printf '%s\n' "${mem_rows[@]}"
  echo
  echo "Medians over $rounds round(s) of $dur s per run; added latency = median(proxy) - median(direct)."
  echo
  echo "Goals:"
  for mode in plaintext mtls; do
    a50=$(diff_us "${med[$mode.fixed_p50]}" "${med[direct.fixed_p50]}")
    a99=$(diff_us "${med[$mode.fixed_p99]}" "${med[direct.fixed_p99]}")
    r=$(vs_direct "$mode")
    echo "- $mode: added p50 $a50 µs (≤ 100): $(verdict "$(calc "print (\"$a50\" != \"NA\" && $a50 + 0 <= 100)")");" \
      "added p99 $a99 µs (≤ 1,000): $(verdict "$(calc "print (\"$a99\" != \"NA\" && $a99 + 0 <= 1000)")");" \
      "throughput $r of direct (≥ 0.50): $(verdict "$(calc "print (\"$r\" != \"NA\" && $r + 0 >= 0.5)")")"
  done
  echo "- resident memory under 20 MB (19.07 MiB), gen-policy.sh $routes prefix bundle: VmHWM $(mib "$hwm_after") MiB: $(verdict "$(calc "print ($hwm_after * 1024 < 20000000)")")"
  ((${#mem_goals[@]} == 0)) || printf '%s\n' "${mem_goals[@]}"
} >"$table"

echo
echo "Machine: $ncpu cores, $(cpu_model); load generator, upstream and proxy share them."
echo "Tools: $(h2load --version 2>&1 | head -1), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$nginx_bin" -v 2>&1 | awk '{print $3}'), mTLS listener: $tls_version."
echo
cat "$table"
echo
echo "Raw outputs (results.tsv, h2load logs, wrk outputs, proxy log and metrics): $work"
