#!/usr/bin/env bash
# Outbound proxy benchmark: the Sluice proxy's explicit outbound listener (an
# HTTP proxy for the local application), to a declared service and as egress,
# against a direct connection to the same upstream and, as a control, the
# same proxy's inbound plaintext listener, side by side in one run, all on
# 127.0.0.1.
#
#   bash benches/proxy/outbound.sh            # 3 rounds, 10 s per run (~5 minutes)
#   QUICK=1 bash benches/proxy/outbound.sh    # 1 round, 2 s per run (smoke test)
#
# What it does:
#   1. installs wrk, h2load (nghttp2-client), nginx and curl if missing
#      (apt-get; with sudo when not root), builds `sluice` in release;
#   2. writes the policy (outbound/policy.sluice.in): a service `checkout`
#      with authority "checkout:8080", one backend whose one endpoint is the
#      upstream, one route `path prefix "/api"` (retries unwritten, so the
#      defaults: attempts 1 on gateway-error, reset, budget 20%); and an
#      egress block, default deny, allowing network 127.0.0.1 on the
#      upstream's port; and, for the control, a server `web` on port 8080
#      with a route `path prefix "/api"` allowed from any; lints and
#      compiles it;
#   3. starts the upstream: nginx, no master process, one worker, `return
#      200 "ok\n"` from memory (outbound/nginx.conf.in, as run.sh's);
#   4. starts `sluice proxy` with one explicit outbound listener and one
#      plaintext inbound listener for port 8080 forwarding to the upstream
#      (outbound/proxy.toml.in), waits for /ready, and checks that: direct
#      and the inbound listener answer nginx's 200; the outbound listener routes `Host: checkout:8080`
#      to the service and `Host: 127.0.0.1:APP_PORT` as egress, each 200
#      with nginx's body, in origin form (as the load generators send) and
#      in absolute form (curl -x); that the proxy counted each as what it
#      is (sluice_outbound_requests_total for the service,
#      sluice_egress_decisions_total{decision="allow"} for egress); that
#      `Host: denied.example:80` gets 403 and a service path without a route
#      gets 404;
#   5. for each round, interleaved over direct, service, egress and (unless
#      CONTROL=0) inbound:
#      - fixed rate: h2load, HTTP/1.1 keep-alive, one connection, RATE req/s
#        (default 1,000) for DURATION s after 1 s of warm-up; p50, p99 and
#        p99.9 from the per-request latencies of its --log-file;
#      - saturation: wrk -t1 -c32 for DURATION s, HTTP/1.1 keep-alive;
#      the host goes in as `-H ':authority: HOST'` for h2load (its `-H
#      'Host: …'` adds a second Host header after its own instead of
#      replacing it) and `-H 'Host: HOST'` for wrk (which replaces it); for
#      the proxied runs, the proxy's CPU seconds (utime + stime from
#      /proc/PID/stat) per 100,000 requests it counted; for the wrk runs,
#      how many of the machine's cores were busy (/proc/stat) and the
#      proxy's and upstream's share of them;
#   6. reads VmRSS and VmHWM of the proxy from /proc/PID/status before and
#      after the load;
#   7. prints a markdown table of medians over the rounds, the spread
#      (min–max) across rounds, and writes them with every raw output
#      (results.tsv, h2load logs, wrk outputs, the proxy's log and metrics)
#      to a temp folder whose path it prints.
#
# Every process it starts is stopped on exit (lib.sh holds what the three
# proxy scripts share). Environment knobs: QUICK, BUILD (debug: the
# binaries in target/debug, if there), ROUNDS, DURATION, RATE, WRK_CONNS, CONTROL, APP_PORT, OUT_PORT, INBOUND_PORT, ADMIN_PORT,
# SLUICE_LOG (the proxy's log filter, `info` unless set; the proxy logs
# nothing per allowed request).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy/outbound
. "$root/benches/proxy/lib.sh"

load_knobs 2
app_port=${APP_PORT:-18180}
out_port=${OUT_PORT:-14140}
inbound_port=${INBOUND_PORT:-15101}
admin_port=${ADMIN_PORT:-15991}
req_path=/api/items/42
service_host=checkout:8080
egress_host=127.0.0.1:$app_port
targets=(direct service egress)
[[ ${CONTROL:-1} == 0 ]] || targets+=(inbound)

# ---------------------------------------------------------------- tools
ensure_tools
build_binaries
"$sluice" proxy --help >/dev/null 2>&1 || die "this sluice has no \`proxy\` command"

ports_free "set APP_PORT, OUT_PORT, INBOUND_PORT or ADMIN_PORT" "$app_port" "$out_port" "$inbound_port" "$admin_port"

make_work sluice-outbound-bench
mkdir -p "$work/nginx"

# ---------------------------------------------------------------- policy
log "policy: service checkout ($service_host -> 127.0.0.1:$app_port), egress allow 127.0.0.1:$app_port"
fill "$here/policy.sluice.in" APP_PORT="$app_port" >"$work/outbound.sluice"
"$sluice" lint "$work/outbound.sluice" >"$work/lint.txt" 2>&1 || { cat "$work/lint.txt" >&2; die "lint failed"; }
"$sluice" compile "$work/outbound.sluice" -o "$work/outbound.bundle" | tee "$work/compile.txt" >&2

# ---------------------------------------------------------------- upstream
fill "$here/nginx.conf.in" TEMP_PATHS="$(nginx_temp_paths "$work/nginx")" DIR="$work/nginx" APP_PORT="$app_port" \
  >"$work/nginx/nginx.conf"
start_nginx "$work/nginx"
nginx_pid=$nginx_started
wait_for "http://127.0.0.1:$app_port/" 10 || die "nginx did not start; see $work/nginx/error.log"

# ---------------------------------------------------------------- proxy
fill "$here/proxy.toml.in" BUNDLE="$work/outbound.bundle" ADMIN_PORT="$admin_port" OUT_PORT="$out_port" \
  INBOUND_PORT="$inbound_port" APP_PORT="$app_port" >"$work/proxy.toml"
log "sluice proxy --config $work/proxy.toml"
SLUICE_LOG=${SLUICE_LOG:-info} "$sluice" proxy --config "$work/proxy.toml" 2>"$work/proxy.log" &
proxy_pid=$!
pids+=("$proxy_pid")
wait_for "http://127.0.0.1:$admin_port/ready" 30 ||
  { tail -20 "$work/proxy.log" >&2; die "the proxy did not become ready; see $work/proxy.log"; }

url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$app_port$req_path" ;;
    service | egress) echo "http://127.0.0.1:$out_port$req_path" ;;
    inbound) echo "http://127.0.0.1:$inbound_port$req_path" ;;
  esac
}
host_of() { # the Host the application sends (none overridden for direct)
  case $1 in
    service) echo "$service_host" ;;
    egress) echo "$egress_host" ;;
    *) echo "" ;;
  esac
}
# h2load's `-H 'Host: x'` keeps its own Host and adds a second one; its
# `:authority` pseudo-header replaces it (also over HTTP/1.1). wrk replaces
# Host. Both checked by capturing what they send.
h2load_host_args() { local h; h=$(host_of "$1"); [[ -z $h ]] || printf '%s\n' -H ":authority: $h"; }
wrk_host_args() { local h; h=$(host_of "$1"); [[ -z $h ]] || printf '%s\n' -H "Host: $h"; }
pid_of() { [[ $1 == direct ]] && echo "" || echo "$proxy_pid"; }

metric_sum() { # FILE REGEX: sum of the samples whose name and labels match
  awk -v re="$2" '!/^#/ && $1 ~ re {s += $2} END {printf "%d\n", s}' "$1"
}
metrics_to() { curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics" >"$1"; }
served_as() { # METRICS_FILE: requests counted as service, as allowed egress, as inbound
  echo "$(metric_sum "$1" '^sluice_outbound_requests_total[{]')" \
    "$(metric_sum "$1" '^sluice_egress_decisions_total[{].*decision="allow"')" \
    "$(metric_sum "$1" '^sluice_inbound_requests_total[{]')"
}

# Sanity: each path answers nginx's "ok", is taken for what it is, and the
# proxy enforces the policy.
check() { # NAME EXPECTED_STATUS EXPECTED_BODY curl args...
  local name=$1 want=$2 body=$3 got
  shift 3
  got=$(curl -sS --max-time 5 -o "$work/raw/check-$name.body" -w '%{http_code}' "$@" 2>>"$work/raw/checks.txt" || true)
  printf '%s: %s %s\n' "$name" "$got" "$(head -c 60 "$work/raw/check-$name.body" | tr '\n' ' ')" >>"$work/raw/checks.txt"
  [[ $got == "$want" ]] || die "check $name: status $got, expected $want (see $work/raw/checks.txt)"
  [[ -z $body ]] || grep -q "$body" "$work/raw/check-$name.body" || die "check $name: unexpected body"
}
check_counted() { # NAME EXPECTED_SERVICE_DELTA EXPECTED_EGRESS_DELTA curl args...
  local name=$1 ds=$2 de=$3 s0 e0 s1 e1
  shift 3
  metrics_to "$work/raw/metrics-check.txt"
  read -r s0 e0 _ < <(served_as "$work/raw/metrics-check.txt")
  check "$name" 200 '^ok$' "$@"
  metrics_to "$work/raw/metrics-check.txt"
  read -r s1 e1 _ < <(served_as "$work/raw/metrics-check.txt")
  ((s1 - s0 == ds && e1 - e0 == de)) ||
    die "check $name: counted as service +$((s1 - s0)), egress +$((e1 - e0)); expected +$ds, +$de"
}
check direct 200 '^ok$' "$(url_of direct)"
check_counted service 1 0 -H "Host: $service_host" "$(url_of service)"
check_counted egress 0 1 -H "Host: $egress_host" "$(url_of egress)"
check_counted service-absolute-form 1 0 -x "http://127.0.0.1:$out_port" "http://$service_host$req_path"
check_counted egress-absolute-form 0 1 -x "http://127.0.0.1:$out_port" "http://$egress_host$req_path"
check egress-denied 403 '' -H "Host: denied.example:80" "$(url_of egress)"
[[ ${CONTROL:-1} == 0 ]] || check inbound 200 '^ok$' "$(url_of inbound)"
check service-no-route 404 '' -H "Host: $service_host" "http://127.0.0.1:$out_port/nope"
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$admin_port/ready" ||
  die "the proxy stopped answering after the checks (see $work/proxy.log)"

# ---------------------------------------------------------------- measurements
init_results
proxy_mem() { mem_of_pid "$proxy_pid"; }
proxy_counts() { # requests answered (its latency histogram), as service, as allowed egress
  metrics_to "$work/raw/metrics-span.txt"
  echo "$(metric_sum "$work/raw/metrics-span.txt" '^sluice_request_duration_seconds_count$')" \
    "$(served_as "$work/raw/metrics-span.txt")"
}

# Around a run: CPU ticks of the proxy (for proxied targets), the upstream and
# the machine, and the proxy's request counts.
span_start() { # TARGET
  read -r p_ticks0 p_sys0 < <(ticks_of "$(pid_of "$1")")
  read -r u_ticks0 _ < <(ticks_of "$nginx_pid")
  read -r m_busy0 m_total0 < <(machine_ticks)
  read -r handled0 svc0 egr0 inb0 < <(proxy_counts)
}
span_end() { # ROUND TARGET KIND REQUESTS_IF_DIRECT
  local round=$1 target=$2 kind=$3 n=$4 p_ticks1 p_sys1 u_ticks1 m_busy1 m_total1 handled1 svc1 egr1 inb1 other
  read -r p_ticks1 p_sys1 < <(ticks_of "$(pid_of "$target")")
  read -r u_ticks1 _ < <(ticks_of "$nginx_pid")
  read -r m_busy1 m_total1 < <(machine_ticks)
  read -r handled1 svc1 egr1 inb1 < <(proxy_counts)
  if [[ $target != direct ]]; then
    n=$((handled1 - handled0))
    # Requests the proxy counted on another path than the one run (should be 0).
    case $target in
      service) other=$((egr1 - egr0 + inb1 - inb0)) ;;
      egress) other=$((svc1 - svc0 + inb1 - inb0)) ;;
      inbound) other=$((svc1 - svc0 + egr1 - egr0)) ;;
    esac
    record "$round" "$target" "misrouted_$kind" "$other"
  fi
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

fixed_run() { # ROUND TARGET, with the target's host
  local hargs
  mapfile -t hargs < <(h2load_host_args "$2")
  span_fixed_run "$1" "$2" "${hargs[@]}"
}
sat_run() { # ROUND TARGET, with the target's host
  local wargs
  mapfile -t wargs < <(wrk_host_args "$2")
  span_sat_run "$1" "$2" "${wargs[@]}"
}

read -r rss_idle hwm_idle < <(proxy_mem)
log "proxy ready (pid $proxy_pid): VmRSS $rss_idle kB, VmHWM $hwm_idle kB before any load"

for ((round = 1; round <= rounds; round++)); do
  for target in "${targets[@]}"; do fixed_run "$round" "$target"; done
  for target in "${targets[@]}"; do sat_run "$round" "$target"; done
done
read -r rss_after hwm_after < <(proxy_mem)
threads=$(awk '/^Threads:/{print $2}' "/proc/$proxy_pid/status")
upstream_conns=$(awk -v p="$(printf ':%04X' "$app_port")" '$3 ~ p"$" && $4 == "01"' /proc/net/tcp | wc -l)
metrics_to "$work/raw/metrics-after.txt" || true
retries=$(metric_sum "$work/raw/metrics-after.txt" '^sluice_outbound_retries_total')
proxy_errors=$(metric_sum "$work/raw/metrics-after.txt" '^sluice_outbound_errors_total')

# ---------------------------------------------------------------- table
spread() { # TARGET METRIC: min–max over the rounds
  awk -F'\t' -v t="$1" -v m="$2" '$2 == t && $3 == m && $4 != "NA" && $4 != "" {print $4}' "$results" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR == 1) print a[1]; else print a[1] "–" a[NR] }'
}
medians_by_target fixed_p50 fixed_p99 fixed_p999 fixed_rps sat_rps \
  cpu_fixed cpu_fixed_sys cpu_sat cpu_sat_sys cores_machine_sat cores_proxy_sat cores_upstream_sat
bad() { echo $(($(total "$1" fixed_bad) + $(total "$1" sat_bad))); }
cores() {
  local p="${med[$1.cores_proxy_sat]}"
  [[ $1 == direct ]] && p="–"
  echo "${med[$1.cores_machine_sat]} / $p / ${med[$1.cores_upstream_sat]}"
}
sp() { [[ $1 == direct && $metric == cpu_* ]] && echo "" || spread "$1" "$metric"; }
sat_ratio_spread() { # per-round ratio to the same round's direct run
  [[ $1 == direct ]] && { echo ""; return; }
  awk -F'\t' -v t="$1" '$3 == "sat_rps" && $2 == "direct" {d[$1] = $4} $3 == "sat_rps" && $2 == t {p[$1] = $4}
    END { for (r in p) if (d[r] > 0) print p[r] / d[r] }' "$results" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR == 1) printf "%.2f\n", a[1]; else printf "%.2f–%.2f\n", a[1], a[NR] }'
}
misrouted() { [[ $1 == direct ]] && echo "" || echo $(($(total "$1" misrouted_fixed) + $(total "$1" misrouted_sat))); }
label_of() {
  case $1 in
    direct) echo "direct" ;;
    service) echo "outbound → service" ;;
    egress) echo "outbound → egress (IP literal)" ;;
    inbound) echo "inbound plaintext (control)" ;;
  esac
}

table=$work/table.md
{
  table_head
  latency_and_throughput_rows
  metric=cpu_fixed row "proxy CPU s per 100k requests at $rate req/s (of which system)" cpu
  metric=cpu_sat row "proxy CPU s per 100k requests at saturation (of which system)" cpu
  row "cores busy at saturation: machine / proxy / upstream" cores
  row "non-2xx answers and socket errors (all runs)" bad
  row "requests the proxy counted as the other path (all runs)" misrouted
  echo
  echo "Spread over $rounds round(s) (min–max of the per-round values):"
  echo
  echo "$header"
  echo "$sep"
  metric=fixed_p50 row "p50 (µs)" sp
  metric=fixed_p99 row "p99 (µs)" sp
  metric=fixed_p999 row "p99.9 (µs)" sp
  metric=sat_rps row "saturation (req/s)" sp
  row "throughput vs the round's direct run" sat_ratio_spread
  metric=cpu_fixed row "proxy CPU s per 100k at $rate req/s" sp
  metric=cpu_sat row "proxy CPU s per 100k at saturation" sp
  echo
  echo "Proxy memory: VmRSS / VmHWM $(mib "$rss_idle") / $(mib "$hwm_idle") MiB when ready," \
    "$(mib "$rss_after") / $(mib "$hwm_after") MiB after the load; $threads threads;" \
    "$upstream_conns connections to the upstream open at the end (all paths); retries $retries;" \
    "answers the proxy made itself $proxy_errors."
  echo
  echo "Medians over $rounds round(s) of $dur s per run; added latency = median(proxy) - median(direct)."
} >"$table"

echo
echo "Machine: $ncpu cores, $(cpu_model); load generator, upstream and proxy share them."
echo "Tools: $(h2load --version 2>&1 | head -1), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$nginx_bin" -v 2>&1 | awk '{print $3}')."
echo
cat "$table"
echo
echo "Raw outputs (results.tsv, h2load logs, wrk outputs, proxy log and metrics): $work"
