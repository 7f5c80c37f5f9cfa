#!/usr/bin/env bash
# Proxies compared on the same rules: direct, Sluice (plaintext, and mTLS),
# nginx and HAProxy (two ways: one ACL rule per route, and maps), for 10 and
# 1,000 routes, side by side in interleaved runs, all on loopback.
#
#   bash benches/proxy/compare.sh            # 3 rounds, 10 s per run (~10 minutes)
#   QUICK=1 bash benches/proxy/compare.sh    # CI: 1 round, 1 s per run, 10 and 100 routes, no mTLS
#
# What it does:
#   1. installs nginx, haproxy, wrk, h2load (nghttp2-client) and curl if
#      missing (apt-get; with sudo when not root); builds `sluice` and the
#      `peer_configs` example in release;
#   2. for each route count: writes one Sluice policy (compare/gen-policy.sh:
#      routes `method GET, POST  path prefix "/api/sNNNN"`, allow/deny by
#      client address, and by mTLS identity), lints and compiles it, and
#      derives nginx.conf and haproxy.cfg from it with `cargo run --release
#      -p sluice-benches --example peer_configs -- POLICY OUTDIR`, which
#      parses the policy with sluice_lang and walks the AST (and also writes
#      haproxy-map.cfg, the same routes looked up in two maps);
#   3. starts the upstream (nginx, no master, one worker, `return 200
#      "ok\n"` from memory: compare/upstream.conf.in) and, per route count,
#      `sluice proxy` (tokio, SLUICE_WORKERS=WORKERS threads; a plaintext and
#      an mTLS listener), nginx (master + WORKERS worker processes,
#      proxy_pass over a keep-alive upstream pool) and HAProxy twice (one
#      process each, nbthread WORKERS: haproxy.cfg and haproxy-map.cfg), all
#      forwarding to the upstream;
#   4. checks that every proxy answers the same statuses to the same
#      requests (allowed 200, wrong method 404, unknown path 404, element-wise
#      prefix, path normalization, denied addresses 403 from 127.0.0.2-4 by
#      binding curl to them), and Sluice's mTLS listener by identity; fails
#      if any answer differs;
#   5. under an exclusive lock (/tmp/sluice-bench.lock, so two benchmarks
#      never overlap), for each round, over every target in a rotating order:
#      - fixed rate: h2load, HTTP/1.1 keep-alive, one connection, RATE req/s
#        (default 1,000) for DURATION s after 1 s of warm-up; p50 and p99 from
#        the per-request latencies of its --log-file;
#      - saturation: wrk -t1 -c32 for DURATION s;
#      both request the last route (GET /api/sLAST/items/42, the worst case
#      for matching in order); for each, the proxy's CPU seconds (utime +
#      stime from /proc/PID/stat, summed over its processes) per 100,000
#      requests (as counted by the load generator);
#   6. reads the resident memory of each proxy (VmRSS and Pss, summed over
#      its processes) when ready and after the load; prints markdown tables
#      of medians over the rounds, and writes them with every raw output to
#      a temp folder whose path it prints. Fails if a target answered nothing.
#
# The machine's cores are shared by the load generator (one wrk thread), the
# upstream (one process) and the proxy under test (WORKERS threads or
# processes each, 2 by default).
#
# Environment knobs (lib.sh holds what the three proxy scripts share):
# QUICK, BUILD (debug: the binaries in target/debug, if there), ROUNDS,
# DURATION, RATE, ROUTES (route counts, "10 1000"), WORKERS, WRK_CONNS, MTLS (1: also measure Sluice's mTLS
# listener; 0 in QUICK mode), PORT_BASE (16000: the upstream; each route
# count k uses PORT_BASE+10k+11..16), SLUICE_LOG.
#
# Sluice against nginx on this workload over HTTP/2 too, with two `sluice`
# binaries side by side (before and after a change) and a perf profile:
# benches/proxy/vs-nginx.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy/compare
. "$root/benches/proxy/lib.sh"

load_knobs 1
if [[ ${QUICK:-0} == 1 ]]; then
  route_counts=(${ROUTES:-10 100})
  mtls=${MTLS:-0}
else
  route_counts=(${ROUTES:-10 1000})
  mtls=${MTLS:-1}
fi
workers=${WORKERS:-2}
port_base=${PORT_BASE:-16000}
app_port=$port_base

# ---------------------------------------------------------------- tools
ensure_tools haproxy
haproxy_bin=$(command -v haproxy)
build_binaries peer_configs
peer_configs=$example_bin

ports=("$app_port")
for ((k = 0; k < ${#route_counts[@]}; k++)); do
  for p in 1 2 3 4 5 6; do ports+=($((port_base + 10 * k + 10 + p))); done
done
ports_free "set PORT_BASE" "${ports[@]}"

make_work sluice-proxy-compare
mkdir -p "$work/upstream" "$work/certs"

# ---------------------------------------------------------------- upstream and identities
fill "$here/upstream.conf.in" TEMP_PATHS="$(nginx_temp_paths "$work/upstream")" DIR="$work/upstream" \
  APP_PORT="$app_port" >"$work/upstream/nginx.conf"
start_nginx "$work/upstream"
wait_for_answer "http://127.0.0.1:$app_port/" 10 || die "the upstream did not start; see $work/upstream/error.log"

log "identities: dev CA for bench.local, the proxy's SVID, two client SVIDs"
{
  "$sluice" identity ca --trust-domain bench.local --out "$work/certs"
  "$sluice" identity issue --ca "$work/certs" --id spiffe://bench.local/ns/bench/sa/app --out "$work/certs/proxy"
  "$sluice" identity issue --ca "$work/certs" --id spiffe://bench.local/ns/partner/sa/client --out "$work/certs/partner"
  "$sluice" identity issue --ca "$work/certs" --id spiffe://bench.local/ns/quarantine/sa/client --out "$work/certs/quarantine"
} >"$work/identity.txt" 2>&1 || { cat "$work/identity.txt" >&2; die "sluice identity failed"; }

# ---------------------------------------------------------------- proxies, per route count
declare -A port_of pids_of label_of
targets=(direct)
port_of[direct]=$app_port
label_of[direct]=direct
for ((k = 0; k < ${#route_counts[@]}; k++)); do
  n=${route_counts[k]}
  ((n >= 2)) || die "route counts must be at least 2"
  base=$((port_base + 10 * k + 10))
  d=$work/n$n
  mkdir -p "$d/nginx" "$d/haproxy" "$d/hamap"
  log "$n routes: policy, bundle, nginx.conf and haproxy.cfg"
  bash "$here/gen-policy.sh" "$n" >"$d/compare.sluice"
  "$sluice" lint "$d/compare.sluice" >"$d/lint.txt" 2>&1 || { cat "$d/lint.txt" >&2; die "lint failed"; }
  "$sluice" compile "$d/compare.sluice" -o "$d/compare.bundle" >"$d/compile.txt" 2>&1 ||
    { cat "$d/compile.txt" >&2; die "compile failed"; }
  "$peer_configs" "$d/compare.sluice" "$d/generated" 2>"$d/peer_configs.txt" ||
    { cat "$d/peer_configs.txt" >&2; die "peer_configs failed"; }

  # Sluice
  fill "$here/proxy.toml.in" BUNDLE="$d/compare.bundle" CERTS="$work/certs" ADMIN_PORT=$((base + 5)) \
    PLAIN_PORT=$((base + 1)) MTLS_PORT=$((base + 2)) APP_PORT="$app_port" >"$d/proxy.toml"
  SLUICE_WORKERS=$workers SLUICE_LOG=${SLUICE_LOG:-info} "$sluice" proxy --config "$d/proxy.toml" 2>"$d/sluice.log" &
  pids+=($!)
  pids_of[sluice-$n]=$!
  pids_of[mtls-$n]=$!
  # nginx
  # As root, nginx's workers would run as nobody, who cannot enter the run folder.
  user=""
  [[ $(id -u) != 0 ]] || user="user root;"
  fill "$d/generated/nginx.conf" TEMP_PATHS="$(nginx_temp_paths "$d/nginx")" DIR="$d/nginx" WORKERS="$workers" \
    USER="$user" LISTEN="127.0.0.1:$((base + 3))" UPSTREAM="127.0.0.1:$app_port" >"$d/nginx/nginx.conf"
  start_nginx "$d/nginx"
  pids_of[nginx-$n]=$nginx_started
  # HAProxy: one process, -db keeps it in the foreground.
  fill "$d/generated/haproxy.cfg" THREADS="$workers" LISTEN="127.0.0.1:$((base + 4))" \
    UPSTREAM="127.0.0.1:$app_port" >"$d/haproxy/haproxy.cfg"
  "$haproxy_bin" -db -f "$d/haproxy/haproxy.cfg" >"$d/haproxy/log.txt" 2>&1 &
  pids+=($!)
  pids_of[haproxy-$n]=$!
  # HAProxy again, routing through maps (a tree lookup instead of one rule per route).
  [[ -f $d/generated/haproxy-map.cfg ]] || die "peer_configs wrote no haproxy-map.cfg"
  cp "$d/generated/routes-exact.map" "$d/generated/routes-prefix.map" "$d/hamap/"
  fill "$d/generated/haproxy-map.cfg" THREADS="$workers" LISTEN="127.0.0.1:$((base + 6))" \
    UPSTREAM="127.0.0.1:$app_port" MAPS="$d/hamap" >"$d/hamap/haproxy.cfg"
  "$haproxy_bin" -db -f "$d/hamap/haproxy.cfg" >"$d/hamap/log.txt" 2>&1 &
  pids+=($!)
  pids_of[hamap-$n]=$!

  port_of[sluice-$n]=$((base + 1))
  port_of[mtls-$n]=$((base + 2))
  port_of[nginx-$n]=$((base + 3))
  port_of[haproxy-$n]=$((base + 4))
  port_of[hamap-$n]=$((base + 6))
  label_of[sluice-$n]=Sluice
  label_of[mtls-$n]="Sluice mTLS"
  label_of[nginx-$n]=nginx
  label_of[haproxy-$n]="HAProxy (ACL per route)"
  label_of[hamap-$n]="HAProxy (maps)"
  targets+=("sluice-$n")
  [[ $mtls == 1 ]] && targets+=("mtls-$n")
  targets+=("nginx-$n" "haproxy-$n" "hamap-$n")

  wait_for "http://127.0.0.1:$((base + 5))/ready" 30 ||
    { tail -20 "$d/sluice.log" >&2; die "sluice ($n routes) did not become ready"; }
  wait_for_answer "http://127.0.0.1:$((base + 3))/" 10 || { cat "$d/nginx/error.log" >&2; die "nginx ($n routes) did not start"; }
  wait_for_answer "http://127.0.0.1:$((base + 4))/" 10 || { cat "$d/haproxy/log.txt" >&2; die "haproxy ($n routes) did not start"; }
  wait_for_answer "http://127.0.0.1:$((base + 6))/" 10 || { cat "$d/hamap/log.txt" >&2; die "haproxy with maps ($n routes) did not start"; }
done

scheme_of() { [[ $1 == mtls-* ]] && echo https || echo http; }
last_of() { printf '%04d' $((${1#*-} - 1)); }
url_of() { # TARGET: the measured request, to the last route
  local t=$1
  if [[ $t == direct ]]; then echo "http://127.0.0.1:$app_port/api/s0000/items/42"; return; fi
  echo "$(scheme_of "$t")://127.0.0.1:${port_of[$t]}/api/s$(last_of "$t")/items/42"
}
procs_of() { # TARGET: its process IDs (nginx: the master and its workers)
  local t=$1 p=${pids_of[$1]:-}
  [[ -n $p ]] || return 0
  echo "$p"
  # nginx's workers: the processes whose parent is the master (field 4 of
  # /proc/PID/stat; the command name in field 2 has no spaces here).
  [[ $t == nginx-* ]] && { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$p" '$4 == p {print $1}' || true
}

# ---------------------------------------------------------------- same answers
# Each check: NAME EXPECTED SOURCE_ADDRESS METHOD PATH [curl args]; LAST is
# the last route's number, FIRST route 0.
checks_for() { # LAST
  local l=$1
  cat <<EOF
allowed-get 200 127.0.0.1 GET /api/s$l/items/42
allowed-post 200 127.0.0.1 POST /api/s$l/items/42 -d x
prefix-itself 200 127.0.0.1 GET /api/s$l
trailing-slash 200 127.0.0.1 GET /api/s$l/
first-route 200 127.0.0.1 GET /api/s0000/x
element-wise-prefix 404 127.0.0.1 GET /api/s${l}0
wrong-method 404 127.0.0.1 DELETE /api/s$l/items/42
head-not-listed 404 127.0.0.1 HEAD /api/s$l/items/42
unknown-path 404 127.0.0.1 GET /nope
dot-segments-and-slashes 200 127.0.0.1 GET /api/x/..//s$l//items --path-as-is
escaped-unreserved 200 127.0.0.1 GET /api/%73$l/items
excepted-address 403 127.0.0.2 GET /api/s$l/items/42
denied-address 403 127.0.0.3 GET /api/s$l/items/42
denied-address-unknown-path 404 127.0.0.3 GET /nope
denied-address-wrong-method 404 127.0.0.3 DELETE /api/s$l/items/42
route-rule-denied 403 127.0.0.4 GET /api/s0000/x
route-rule-other-route 200 127.0.0.4 GET /api/s$l/x
EOF
}
ask() { # URL SOURCE METHOD [curl args]: prints the status
  local url=$1 src=$2 method=$3
  shift 3
  local m=(-X "$method")
  [[ $method == HEAD ]] && m=(-I)
  curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --interface "$src" "${m[@]}" "$@" "$url" 2>>"$work/raw/checks-curl.txt" || true
}
log "checking that every proxy answers the same"
failed=0
{
  printf '| check | expected |'
  for t in "${targets[@]}"; do [[ $t == direct || $t == mtls-* ]] || printf ' %s |' "$t"; done
  echo
} >"$work/checks.md"
for ((k = 0; k < ${#route_counts[@]}; k++)); do
  n=${route_counts[k]}
  l=$(printf '%04d' $((n - 1)))
  while read -r name want src method path extra; do
    line="| $name ($n routes) | $want |"
    for t in "${targets[@]}"; do
      [[ $t == direct || $t == mtls-* ]] && continue
      if [[ ${t#*-} != "$n" ]]; then line+=" |"; continue; fi
      # shellcheck disable=SC2086
      got=$(ask "http://127.0.0.1:${port_of[$t]}$path" "$src" "$method" $extra)
      line+=" $got |"
      if [[ $got != "$want" ]]; then
        printf 'check %s, %s: %s %s from %s answered %s, expected %s\n' "$name" "$t" "$method" "$path" "$src" "$got" "$want" >&2
        failed=1
      fi
    done
    echo "$line" >>"$work/checks.md"
  done < <(checks_for "$l")
  if true; then
    # Sluice's mTLS listener, by identity (always checked; measured when MTLS=1).
    u="https://127.0.0.1:${port_of[mtls-$n]}/api/s$l/items/42"
    id=(--cacert "$work/certs/ca.pem" -k --http1.1)
    while read -r name want src cert; do
      args=("${id[@]}")
      [[ $cert == - ]] || args+=(--cert "$work/certs/$cert.pem" --key "$work/certs/$cert.key")
      got=$(ask "$u" "$src" GET "${args[@]}")
      echo "| mTLS $name ($n routes) | $want | $got (Sluice mTLS) |" >>"$work/checks.md"
      if [[ $got != "$want" ]]; then
        printf 'check mTLS %s (%s routes): answered %s, expected %s\n' "$name" "$n" "$got" "$want" >&2
        failed=1
      fi
    done <<EOF
no-certificate 200 127.0.0.1 -
partner-from-excepted-address 200 127.0.0.2 partner
partner-from-denied-address 403 127.0.0.3 partner
quarantine-namespace 403 127.0.0.1 quarantine
no-certificate-from-excepted-address 403 127.0.0.2 -
EOF
  fi
done
((failed == 0)) || { cat "$work/checks.md" >&2; die "the proxies do not answer the same (see above)"; }
log "all checks agree ($(grep -c '^| [a-z]' "$work/checks.md") checks)"

# ---------------------------------------------------------------- measurements
exec 9>/tmp/sluice-bench.lock
log "waiting for /tmp/sluice-bench.lock"
flock 9
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: ${#targets[@]} targets, $rounds round(s) of $dur s runs"

init_results

target_ticks() { # TARGET: CPU ticks (user + system) of its processes
  local p sum=0 t
  for p in $(procs_of "$1"); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}
mem_of() { # TARGET: VmRSS and Pss in kB, summed over its processes
  local p rss=0 pss=0 r s
  for p in $(procs_of "$1"); do
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status")
    s=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss + r))
    pss=$((pss + ${s:-0}))
  done
  echo "$rss $pss"
}
per100k() { # TICKS REQUESTS
  awk -v t="$1" -v n="$2" -v hz="$clk_tck" 'BEGIN{ if (n > 0) printf "%.2f", t / hz / n * 100000; else print "NA" }'
}
for t in "${targets[@]}"; do
  [[ $t == direct || $t == mtls-* ]] && continue
  read -r rss pss < <(mem_of "$t")
  record 0 "$t" rss_ready "$rss"
  record 0 "$t" pss_ready "$pss"
done

fixed_run() { # ROUND TARGET
  local r=$1 t=$2 out=$work/raw/fixed-$2-r$1.txt lat=$work/raw/fixed-$2-r$1.log p50 p99 n c0 c1
  c0=$(target_ticks "$t")
  h2load_fixed "$out" "$lat" "$(url_of "$t")"
  c1=$(target_ticks "$t")
  read -r p50 p99 _ n < <(percentiles "$lat")
  record "$r" "$t" fixed_p50 "$p50"
  record "$r" "$t" fixed_p99 "$p99"
  # The CPU span includes the warm-up second: count its requests too.
  [[ $t == direct ]] || record "$r" "$t" cpu_fixed "$(per100k $((c1 - c0)) $((n * (dur + 1) / dur)))"
  record "$r" "$t" bad "$(h2load_bad "$out")"
  log "round $r, $rate req/s, $t: p50 $p50 µs, p99 $p99 µs ($n answers)"
}
sat_run() { # ROUND TARGET
  local r=$1 t=$2 out=$work/raw/wrk-$2-r$1.txt rps n c0 c1
  c0=$(target_ticks "$t")
  wrk_saturate "$out" "$(url_of "$t")"
  c1=$(target_ticks "$t")
  n=$(wrk_requests "$out")
  rps=$(wrk_rps "$out")
  record "$r" "$t" sat_rps "${rps:-NA}"
  [[ $t == direct ]] || record "$r" "$t" cpu_sat "$(per100k $((c1 - c0)) "${n:-0}")"
  record "$r" "$t" bad "$(wrk_bad "$out")"
  log "round $r, wrk -c$wrk_conns, $t: ${rps:-NA} req/s"
}

nt=${#targets[@]}
for ((r = 1; r <= rounds; r++)); do
  # A rotating order, so that no target always runs first or after the same one.
  order=()
  for ((i = 0; i < nt; i++)); do order+=("${targets[(i + r - 1) % nt]}"); done
  for t in "${order[@]}"; do fixed_run "$r" "$t"; done
  for t in "${order[@]}"; do sat_run "$r" "$t"; done
done
for t in "${targets[@]}"; do
  [[ $t == direct || $t == mtls-* ]] && continue
  read -r rss pss < <(mem_of "$t")
  record 0 "$t" rss_after "$rss"
  record 0 "$t" pss_after "$pss"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
flock -u 9

# ---------------------------------------------------------------- tables
thousands() { calc "v = \"$1\"; if (v == \"NA\") print v; else printf \"%d\", v" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

mem_cell() { # TARGET KIND(rss|pss)
  [[ $1 == direct ]] && return
  local t=$1
  [[ $t == mtls-* ]] && t=sluice-${t#*-}
  echo "$(mib "$(median "$t" "$2_ready")") / $(mib "$(median "$t" "$2_after")")"
}

direct_rps=$(median direct sat_rps)
table=$work/table.md
{
  for n in "${route_counts[@]}"; do
    cols=(direct)
    for t in "${targets[@]}"; do [[ $t == *-"$n" ]] && cols+=("$t"); done
    echo "**$n routes** (requests to route $((n - 1)), the last):"
    echo
    line="| |"; sep="|---|"
    for t in "${cols[@]}"; do line+=" ${label_of[$t]} |"; sep+="---:|"; done
    echo "$line"; echo "$sep"
    row() { # LABEL FUNCTION
      local line="| $1 |" t
      for t in "${cols[@]}"; do line+=" $($2 "$t") |"; done
      echo "$line"
    }
    c_rps() { thousands "$(median "$1" sat_rps)"; }
    c_vs() { ratio "$(median "$1" sat_rps)" "$direct_rps"; }
    c_p50() { median "$1" fixed_p50; }
    c_p99() { median "$1" fixed_p99; }
    c_cpu_sat() { [[ $1 == direct ]] || median "$1" cpu_sat; }
    c_cpu_fixed() { [[ $1 == direct ]] || median "$1" cpu_fixed; }
    c_rss() { mem_cell "$1" rss; }
    c_pss() { mem_cell "$1" pss; }
    c_bad() { total "$1" bad; }
    row "saturation, wrk -t1 -c$wrk_conns (req/s)" c_rps
    row "throughput vs direct" c_vs
    row "$rate req/s: p50 (µs)" c_p50
    row "$rate req/s: p99 (µs)" c_p99
    row "proxy CPU s per 100k requests, saturation" c_cpu_sat
    row "proxy CPU s per 100k requests, $rate req/s" c_cpu_fixed
    row "RSS, ready / after load (MiB, all processes)" c_rss
    row "PSS, ready / after load (MiB, all processes)" c_pss
    row "non-2xx answers and socket errors (all runs)" c_bad
    echo
  done
  if ((${#route_counts[@]} >= 2)); then
    lo=${route_counts[0]}
    hi=${route_counts[${#route_counts[@]} - 1]}
    echo "**Growth from $lo to $hi routes** ($hi-route figure / $lo-route figure):"
    echo
    line="| |"; sep="|---|"
    kinds=(sluice)
    [[ $mtls == 1 ]] && kinds+=(mtls)
    kinds+=(nginx haproxy hamap)
    for kd in "${kinds[@]}"; do line+=" ${label_of[$kd-$lo]} |"; sep+="---:|"; done
    echo "$line"; echo "$sep"
    grow() { # LABEL METRIC
      local line="| $1 |" kd
      for kd in "${kinds[@]}"; do line+=" $(ratio "$(median "$kd-$hi" "$2")" "$(median "$kd-$lo" "$2")") |"; done
      echo "$line"
    }
    grow "saturation req/s" sat_rps
    grow "p99 at $rate req/s" fixed_p99
    grow "CPU per request, saturation" cpu_sat
    grow "CPU per request, $rate req/s" cpu_fixed
    line="| RSS after load |"
    for kd in "${kinds[@]}"; do
      s=$kd; [[ $s == mtls ]] && s=sluice
      line+=" $(ratio "$(median "$s-$hi" rss_after)" "$(median "$s-$lo" rss_after)") |"
    done
    echo "$line"
    echo
  fi
  echo "Medians over $rounds round(s) of $dur s per run; Sluice with $workers tokio workers, nginx with $workers worker processes, HAProxy with nbthread $workers."
} >"$table"

echo
echo "Machine: $ncpu cores, $(cpu_model); load generator, upstream and proxies share them."
echo "Load average (1, 5, 15 min) when measuring started: $load_before; when it ended: $load_after."
echo "Tools: $("$nginx_bin" -v 2>&1 | awk '{print $3}'), HAProxy $("$haproxy_bin" -v | awk 'NR == 1 {print $3}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(h2load --version 2>&1 | head -1), $(rustc --version 2>/dev/null || echo rustc ?)."
echo
cat "$table"
echo
echo "Checks (every proxy answered the same): $work/checks.md"
echo "Raw outputs (results.tsv, h2load logs, wrk outputs, generated configurations, logs): $work"

# CI: fail when a target answered nothing, or answered anything but 2xx under load.
for t in "${targets[@]}"; do
  [[ $(median "$t" sat_rps) != NA && $(median "$t" sat_rps) != 0 ]] || die "$t answered nothing under wrk"
  [[ $(total "$t" bad) == 0 ]] || die "$t answered $(total "$t" bad) requests without 2xx or with socket errors"
done
