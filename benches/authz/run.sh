#!/usr/bin/env bash
# `sluice authz` (Envoy's ext_authz, issue 15) under load from a tonic
# client on the same machine, side by side with a bare tonic Authorization
# server that answers OK without deciding: the decision's share of the
# per-check cost shows as a ratio.
#
#   bash benches/authz/run.sh                     # 3 rounds, 10 s per run
#   QUICK=1 BUILD=debug bash benches/authz/run.sh # CI: 1 round, 1 s per run, the test build's binaries
#
# What it does:
#   1. builds `sluice` and the `authz_load` example of sluice-benches in
#      release (BUILD=debug: the ones `cargo test --workspace` left in
#      target/debug, if there; figures are then not comparable);
#   2. writes the decision benchmarks' ROUTES-route policy (1,000; `authz_load
#      policy`), compiles it, and starts `sluice authz` on it (gRPC on
#      127.0.0.1:PORT_BASE+1, admin on +2, SLUICE_WORKERS=WORKERS threads) and
#      the baseline (`authz_load baseline`, on +3, a tonic server of WORKERS
#      threads, the same decoding limit);
#   3. checks `sluice authz`'s answers (`authz_load check`: an allowed
#      check OK; an anonymous peer 403 `forbidden`, its gRPC call grpc-status
#      7, an unknown path 404 `no-route`, a check without attributes
#      INVALID_ARGUMENT `bad-check`) and fails loudly if one differs;
#   4. under /tmp/sluice-bench.lock, for each round and each concurrency of
#      CONCURRENCY ("1 32"), runs `authz_load load` (one tokio thread, CONNS
#      HTTP/2 connections (1), the allowed check, 1 s warm-up then DURATION s)
#      against both servers, alternating which goes first; every answer must
#      be OK (the load fails otherwise); records checks/s, p50, p99 and the
#      server's CPU (utime + stime from /proc) per check;
#   5. prints a markdown table of medians over the rounds, with the ratios
#      sluice / baseline and the share of sluice's server CPU per check
#      that the baseline does not spend (mapping, decision, metrics and
#      building the answer), and keeps every raw output in a temp folder.
#
# Nothing is pinned: on the 2-core machine the client's thread shares the
# cores with the server's WORKERS threads, so checks/s is the whole
# machine's (client included) and the server CPU per check is the cleaner
# comparison.
#
# Knobs: QUICK, BUILD, ROUNDS, DURATION, ROUTES (1000), CONCURRENCY ("1 32"),
# CONNS (1), WORKERS (2), PORT_BASE (19100), ADD_HEADERS (a TOML list for
# `[authz] add-headers`, default none), SLUICE_LOG.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/authz
. "$root/benches/proxy/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
  rounds=${ROUNDS:-1}
  dur=${DURATION:-1}
  warmup=0.5
else
  rounds=${ROUNDS:-3}
  dur=${DURATION:-10}
  warmup=1
fi
routes=${ROUTES:-1000}
read -r -a concurrencies <<<"${CONCURRENCY:-1 32}"
conns=${CONNS:-1}
workers=${WORKERS:-2}
port_base=${PORT_BASE:-19100}
authz_port=$((port_base + 1))
admin_port=$((port_base + 2))
baseline_port=$((port_base + 3))

command -v curl >/dev/null || die "curl is needed (the admin listener's /ready)"
build_binaries authz_load
load_bin=$example_bin
ports_free "set PORT_BASE" "$authz_port" "$admin_port" "$baseline_port"
make_work sluice-authz-bench

# ---------------------------------------------------------------- servers
log "$routes-route benchmark policy"
"$load_bin" policy "$routes" >"$work/policy.sluice"
"$sluice" compile "$work/policy.sluice" -o "$work/policy.bundle" >"$work/compile.txt" 2>&1 ||
  { cat "$work/compile.txt" >&2; die "sluice compile failed"; }
fill "$here/authz.toml.in" BUNDLE="$work/policy.bundle" ADMIN_PORT="$admin_port" AUTHZ_PORT="$authz_port" \
  ADD_HEADERS="${ADD_HEADERS:-[]}" >"$work/authz.toml"

declare -A pid_of addr_of
SLUICE_WORKERS=$workers "$sluice" authz --config "$work/authz.toml" --log "${SLUICE_LOG:-warn}" \
  >"$work/sluice.log" 2>&1 &
pids+=($!)
pid_of[sluice]=$!
addr_of[sluice]=127.0.0.1:$authz_port
"$load_bin" baseline "127.0.0.1:$baseline_port" -t "$workers" >"$work/baseline.log" 2>&1 &
pids+=($!)
pid_of[baseline]=$!
addr_of[baseline]=127.0.0.1:$baseline_port

wait_for "http://127.0.0.1:$admin_port/ready" 60 ||
  { tail -n 30 "$work/sluice.log" >&2; die "sluice authz did not get ready; see $work/sluice.log"; }
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$baseline_port") 2>/dev/null && break
  kill -0 "${pid_of[baseline]}" 2>/dev/null || { cat "$work/baseline.log" >&2; die "the baseline server exited"; }
  sleep 0.1
done

# ---------------------------------------------------------------- answers
log "checking sluice authz's answers"
if ! "$load_bin" check "${addr_of[sluice]}" >"$work/check.txt" 2>&1; then
  cat "$work/check.txt" >&2
  die "sluice authz answered wrongly (above); see $work/sluice.log"
fi
sed 's/^/  /' "$work/check.txt" >&2

# ---------------------------------------------------------------- load
targets=(sluice baseline)
init_results
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { sed -n "s/.*\\<$1=\\([^ ]*\\).*/\\1/p" "$2"; }
load_run() { # ROUND TARGET CONCURRENCY
  local round=$1 t=$2 c=$3 out=$work/raw/load-$2-c$3-r$1.txt t0 t1 n
  t0=$(cpu_ticks "${pid_of[$t]}")
  if ! "$load_bin" load "${addr_of[$t]}" -c "$c" -n "$conns" -d "$dur" -w "$warmup" -t 1 >"$out" 2>&1; then
    cat "$out" >&2
    die "the load on $t failed or got wrong answers (above)"
  fi
  t1=$(cpu_ticks "${pid_of[$t]}")
  n=$(field checks "$out")
  record "$round" "$t" "c$c.rps" "$(field checks_per_s "$out")"
  record "$round" "$t" "c$c.p50" "$(field p50_us "$out")"
  record "$round" "$t" "c$c.p99" "$(field p99_us "$out")"
  # The CPU span covers the warm-up too: count its checks at the measured rate.
  record "$round" "$t" "c$c.cpu" "$(calc "n = $n * ($dur + $warmup) / $dur; if (n > 0) printf \"%.1f\", ($t1 - $t0) / $clk_tck / n * 1e6; else print \"NA\"")"
  log "round $round, -c $c, $t: $(cat "$out")"
}

exec 9>/tmp/sluice-bench.lock
log "waiting for /tmp/sluice-bench.lock"
flock 9
log "measuring: $rounds round(s), runs of $warmup + $dur s, concurrency ${concurrencies[*]}, $conns connection(s); $(nproc) cores, $(cpu_model)"
for ((r = 1; r <= rounds; r++)); do
  for c in "${concurrencies[@]}"; do
    if ((r % 2)); then order=(sluice baseline); else order=(baseline sluice); fi
    for t in "${order[@]}"; do load_run "$r" "$t" "$c"; done
  done
done
flock -u 9

# ---------------------------------------------------------------- table
log "table (medians of $rounds round(s))"
{
  echo "| $routes routes, client: 1 thread, $conns connection(s) | sluice authz | baseline (OK, no decision) | sluice / baseline |"
  echo "|---|---:|---:|---:|"
  for c in "${concurrencies[@]}"; do
    for m in rps p50 p99 cpu; do
      case $m in
        rps) label="checks/s" ;;
        p50) label="p50 (µs)" ;;
        p99) label="p99 (µs)" ;;
        cpu) label="server CPU per check (µs)" ;;
      esac
      s=$(median sluice "c$c.$m")
      b=$(median baseline "c$c.$m")
      echo "| $c in flight: $label | $s | $b | $(ratio "$s" "$b") |"
    done
    s=$(median sluice "c$c.cpu")
    b=$(median baseline "c$c.cpu")
    echo "| $c in flight: sluice's CPU per check above the baseline's (mapping, decision, metrics, answer), share of sluice's | $(calc "s = \"$s\"; b = \"$b\"; if (s == \"NA\" || b == \"NA\" || s == 0) print \"NA\"; else printf \"%.0f%%\", (s - b) / s * 100") | | |"
  done
} | tee "$work/table.md"
