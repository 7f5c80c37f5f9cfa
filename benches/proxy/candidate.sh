#!/usr/bin/env bash
# The cost of a candidate bundle under load (issue 14): two `sluice proxy`
# runs on the same 1,000-route policy (gen-policy.sh, as run.sh), one
# without a candidate and one with `[policy] candidate` = the same policy
# (every request decided twice, all agreeing), side by side in interleaved
# rounds; saturation (wrk -t1 -c32, GET /api/s0500/items/42, plaintext)
# against nginx answering from memory, all on 127.0.0.1. Prints req/s and
# the proxy's CPU (user + system) per request, medians over the rounds.
#
#   bash benches/proxy/candidate.sh            # 3 rounds, 10 s per run
#   QUICK=1 bash benches/proxy/candidate.sh    # 1 round, 2 s per run
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/benches/proxy
. "$here/lib.sh"

load_knobs 2
routes=${ROUTES:-1000}
app_port=${APP_PORT:-18080}
plain_port=${PLAIN_PORT:-15001}
admin_port=${ADMIN_PORT:-15990}
req_path=/api/s0500/items/42
hz=$(getconf CLK_TCK)

ensure_tools
build_binaries
ports_free "set APP_PORT, PLAIN_PORT or ADMIN_PORT" "$app_port" "$plain_port" "$admin_port"
make_work sluice-candidate-bench
mkdir -p "$work/nginx"
bash "$here/gen-policy.sh" "$routes" >"$work/bench.sluice"
"$sluice" compile "$work/bench.sluice" -o "$work/bench.bundle" >&2
cp "$work/bench.bundle" "$work/candidate.bundle"

fill "$here/nginx.conf.in" TEMP_PATHS="$(nginx_temp_paths "$work/nginx")" DIR="$work/nginx" \
  APP_PORT="$app_port" REF_PORT=0 >"$work/nginx/nginx.conf"
start_nginx "$work/nginx"
wait_for "http://127.0.0.1:$app_port/" 10 || die "nginx did not start; see $work/nginx/error.log"

run_proxy() { # NAME EXTRA_POLICY_LINE: one saturation run; prints req/s and proxy CPU us per request
  local name=$1 extra=$2 pid before after requests
  cat >"$work/$name.toml" <<TOML
[policy]
bundle = "$work/bench.bundle"
$extra
watch = false
[admin]
listen = "127.0.0.1:$admin_port"
[[inbound]]
listen = "127.0.0.1:$plain_port"
port = 8080
app = "127.0.0.1:$app_port"
tls = "plaintext"
[limits]
drain-timeout-ms = 2000
TOML
  SLUICE_LOG=warn "$sluice" proxy --config "$work/$name.toml" 2>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  wait_for "http://127.0.0.1:$admin_port/ready" 30 || die "the proxy did not become ready; see $work/$name.log"
  [[ $(curl -s "http://127.0.0.1:$plain_port$req_path") == ok ]] || die "$name: the request is not forwarded"
  before=$(ticks_of "$pid" | cut -d' ' -f1)
  wrk_saturate "$work/$name.wrk" "http://127.0.0.1:$plain_port$req_path"
  after=$(ticks_of "$pid" | cut -d' ' -f1)
  requests=$(wrk_requests "$work/$name.wrk")
  [[ $(wrk_bad "$work/$name.wrk") == 0 ]] || die "$name: errors or non-2xx answers; see $work/$name.wrk"
  if [[ -n $extra ]]; then
    curl -s "http://127.0.0.1:$admin_port/metrics" | grep -q '^sluice_candidate_decisions_total [1-9]' ||
      die "$name: the candidate decided nothing"
    ! curl -s "http://127.0.0.1:$admin_port/metrics" | grep -q '^sluice_candidate_disagreements_total{' ||
      die "$name: the candidate disagreed"
  fi
  stop_pid "$pid"
  pids=("${pids[@]/$pid/}")
  calc "printf \"%s %.2f\\n\", $(wrk_rps "$work/$name.wrk"), ($after - $before) * 1e6 / $hz / $requests"
}

flock_file=/tmp/sluice-bench.lock
exec 9>"$flock_file"
log "waiting for $flock_file"
flock 9
declare -a live_rps live_cpu cand_rps cand_cpu
for ((r = 0; r < rounds; r++)); do
  read -r rps cpu < <(run_proxy "live-$r" "")
  live_rps+=("$rps") live_cpu+=("$cpu")
  read -r rps cpu < <(run_proxy "candidate-$r" "candidate = \"$work/candidate.bundle\"")
  cand_rps+=("$rps") cand_cpu+=("$cpu")
  log "round $((r + 1)): live ${live_rps[r]} req/s ${live_cpu[r]} us CPU/req; with candidate ${cand_rps[r]} req/s ${cand_cpu[r]} us CPU/req"
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
printf '| %s routes, %s round(s) of %s s | req/s | proxy CPU per request (us) |\n|---|---:|---:|\n' "$routes" "$rounds" "$dur"
printf '| live only | %s | %s |\n' "$(med "${live_rps[@]}")" "$(med "${live_cpu[@]}")"
printf '| live + candidate | %s | %s |\n' "$(med "${cand_rps[@]}")" "$(med "${cand_cpu[@]}")"
