# Shared by the proxy benchmark scripts (run.sh, outbound.sh, compare.sh),
# which source it after `cd` to the repository root and set `root` to it:
# tools and binaries, the temp folder, starting and stopping processes,
# waiting for ports, templates, the load generators' runs and what is read
# from them, /proc readings and the medians of results.tsv.

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- knobs
load_knobs() { # QUICK_SECONDS: rounds and dur (QUICK=1: 1 round of QUICK_SECONDS s, else 3 of 10 s; ROUNDS, DURATION), rate (RATE, 1000) and wrk_conns (WRK_CONNS, 32)
  if [[ ${QUICK:-0} == 1 ]]; then
    rounds=${ROUNDS:-1}
    dur=${DURATION:-$1}
  else
    rounds=${ROUNDS:-3}
    dur=${DURATION:-10}
  fi
  rate=${RATE:-1000}
  wrk_conns=${WRK_CONNS:-32}
}

# ---------------------------------------------------------------- tools and binaries
ensure_tools() { # [COMMAND...]: installs wrk, h2load, curl, nginx and COMMANDs (apt-get; sudo unless root) if missing; sets nginx_bin
  local sudo="" missing=() c
  [[ $(id -u) == 0 ]] || sudo=sudo
  export PATH=$PATH:/usr/sbin
  command -v wrk >/dev/null || missing+=(wrk)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  for c in curl nginx "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  nginx_bin=$(command -v nginx)
}

# Sets `sluice` (and `example_bin` when EXAMPLE, an example of sluice-benches,
# is named): with BUILD=debug, the binaries `cargo test --workspace` leaves
# in target/debug if they are there (CI's smoke run: no second, release
# build of everything); otherwise built in release.
build_binaries() { # [EXAMPLE]
  local example=${1:-} dir
  if [[ ${BUILD:-release} == debug && -x $root/target/debug/sluice &&
    (-z $example || -x $root/target/debug/examples/$example) ]]; then
    log "using the binaries in target/debug (BUILD=debug; figures are not comparable)"
    dir=$root/target/debug
  else
    log "cargo build --release -p sluice${example:+; the $example example}"
    cargo build --release -q -p sluice
    [[ -z $example ]] || cargo build --release -q -p sluice-benches --example "$example"
    dir=$root/target/release
  fi
  sluice=$dir/sluice
  [[ -z $example ]] || example_bin=$dir/examples/$example
}

ports_free() { # HINT PORT...: dies when one of the ports on 127.0.0.1 is in use
  local hint=$1 port
  shift
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port on 127.0.0.1 is in use ($hint)"
    fi
  done
}

# ---------------------------------------------------------------- temp folder and processes
make_work() { # NAME: sets `work`, a new temp folder with raw/ in it
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  mkdir -p "$work/raw"
  log "raw outputs: $work"
}

stop_pid() { # PID: TERM, up to 5 s to exit, then KILL
  local i
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Every process in `pids` is stopped on exit (all sent TERM first).
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  [[ -z ${work:-} ]] || printf 'raw outputs: %s\n' "$work" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # URL SECONDS [curl args...]: until it answers 200
  local url=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    curl -fsS --max-time 2 -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

wait_for_answer() { # URL SECONDS: until it answers at all (any status)
  local url=$1 secs=$2 i
  for ((i = 0; i < secs * 10; i++)); do
    curl -sS --max-time 2 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- templates and servers
fill() { # TEMPLATE KEY=VALUE...: the template with each @KEY@ replaced by VALUE
  local text key
  text=$(<"$1")
  shift
  for key in "$@"; do text=${text//@${key%%=*}@/${key#*=}}; done
  printf '%s\n' "$text"
}

nginx_temp_paths() { # DIR: nginx's temp folders inside DIR, so that it needs no root
  local dir=$1 m out=""
  for m in proxy fastcgi uwsgi scgi; do
    "$nginx_bin" -V 2>&1 | grep -q -- "--without-http_${m}_module" || out+="    ${m}_temp_path $dir/${m}_temp;"$'\n'
  done
  printf '%s    client_body_temp_path %s/body_temp;' "$out" "$dir"
}

start_nginx() { # DIR: runs DIR/nginx.conf in the background; sets nginx_started (its PID), adds it to pids
  local dir=$1
  "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.txt" 2>&1 &
  nginx_started=$!
  pids+=("$nginx_started")
}

# ---------------------------------------------------------------- load runs
# Fixed rate: h2load, HTTP/1.1 keep-alive, one connection, RATE req/s for
# DURATION s after 1 s of warm-up, each request's latency in LOG.
h2load_fixed() { # OUT LOG URL [h2load args...]
  local out=$1 lat=$2 url=$3
  shift 3
  timeout $((dur + 60)) h2load --h1 -t1 -c1 --rps "$rate" -D "$dur" --warm-up-time=1 --log-file="$lat" \
    "$@" "$url" >"$out" 2>&1 || true
}
# Saturation: wrk -t1 -cWRK_CONNS for DURATION s.
wrk_saturate() { # OUT URL [wrk args...]
  local out=$1 url=$2
  shift 2
  timeout $((dur + 60)) wrk -t1 -c"$wrk_conns" -d"${dur}s" "$@" "$url" >"$out" 2>&1 || true
}

# Nearest-rank p50, p99 and p99.9 of the 200 answers' latencies (µs) in an
# h2load log, and their count.
percentiles() { # H2LOAD_LOG
  awk -F'\t' '$2 == 200 {print $3}' "$1" | sort -n | awk '
    { a[NR] = $1 }
    function q(p,  i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return a[i] }
    END { if (NR == 0) print "NA NA NA 0"; else print q(0.5), q(0.99), q(0.999), NR }'
}
# Requests not answered 2xx (failed, errored, timed out, or another status).
h2load_bad() { awk '/^requests:/{t = $2} /^status codes:/{ok = $3} END{print t - ok}' "$1"; }
wrk_requests() { awk '/ requests in /{print $1}' "$1"; }
wrk_rps() { awk '/^Requests\/sec:/{printf "%.0f", $2}' "$1"; }
wrk_bad() { awk '/Non-2xx or 3xx responses:/{n = $5} /Socket errors:/{gsub(",", ""); e = $4 + $6 + $8 + $10} END{print n + e}' "$1"; }

# ---------------------------------------------------------------- /proc
clk_tck=$(getconf CLK_TCK)
ncpu=$(nproc)
ticks_of() { # PID: CPU ticks (user + system) and system ticks; 0 0 without a PID
  if [[ -n $1 ]]; then awk '{print $14 + $15, $15}' "/proc/$1/stat"; else echo 0 0; fi
}
machine_ticks() { # busy and total ticks over all cores
  awk '/^cpu /{busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6}' /proc/stat
}
write_bench_policy() { # ROUTES OUT: the decision benchmarks' ROUTES-route policy (benches/src/lib.rs) into OUT, via a throw-away program built in `work`
  mkdir -p "$work/bench-policy/src"
  cat >"$work/bench-policy/Cargo.toml" <<TOML
[package]
name = "sluice-bench-policy"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
sluice-benches = { path = "$root/benches" }
[workspace]
TOML
  echo 'fn main() { print!("{}", sluice_benches::generate(std::env::args().nth(1).unwrap().parse().unwrap())); }' \
    >"$work/bench-policy/src/main.rs"
  cp "$root/Cargo.lock" "$work/bench-policy/"
  cargo build --release -q --manifest-path "$work/bench-policy/Cargo.toml" --target-dir "$root/target"
  "$root/target/release/sluice-bench-policy" "$1" >"$2"
}

mem_of_pid() { # PID: VmRSS VmHWM in kB
  awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' "/proc/$1/status"
}
cpu_model() { awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo; }

# ---------------------------------------------------------------- results and arithmetic
init_results() { # sets `results`, results.tsv in the temp folder, with its header
  results=$work/results.tsv
  printf 'round\ttarget\tmetric\tvalue\n' >"$results"
}
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$results"; }
median() { # TARGET METRIC
  awk -F'\t' -v t="$1" -v m="$2" '$2 == t && $3 == m && $4 != "NA" && $4 != "" {print $4}' "$results" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
total() { # TARGET METRIC: sum over the rounds
  awk -F'\t' -v t="$1" -v m="$2" '$2 == t && $3 == m && $4 ~ /^-?[0-9]+$/ {s += $4} END {print s + 0}' "$results"
}
calc() { awk "BEGIN { $1 }"; }
diff_us() { calc "a = \"$1\"; b = \"$2\"; if (a == \"NA\" || b == \"NA\") print \"NA\"; else printf \"%+d\", a - b"; }
ratio() { calc "a = \"$1\"; b = \"$2\"; if (a == \"NA\" || b == \"NA\" || b == 0) print \"NA\"; else printf \"%.2f\", a / b"; }
mib() { calc "k = \"$1\"; if (k == \"NA\" || k == \"\") print \"\"; else printf \"%.1f\", k / 1024"; }

# ---------------------------------------------------------------- run.sh and outbound.sh
# Their runs and their table, one column per target of `targets`. Each
# script defines url_of, label_of, span_start TARGET and span_end ROUND
# TARGET KIND REQUESTS (which record CPU and cores around a run).

span_fixed_run() { # ROUND TARGET [h2load args...]
  local round=$1 target=$2 out=$work/raw/fixed-$2-r$1.txt lat=$work/raw/fixed-$2-r$1.log
  local p50 p99 p999 n
  shift 2
  span_start "$target"
  h2load_fixed "$out" "$lat" "$(url_of "$target")" "$@"
  read -r p50 p99 p999 n < <(percentiles "$lat")
  # The CPU span includes the warm-up second: count its requests too.
  span_end "$round" "$target" fixed $((n * (dur + 1) / dur))
  record "$round" "$target" fixed_p50 "$p50"
  record "$round" "$target" fixed_p99 "$p99"
  record "$round" "$target" fixed_p999 "$p999"
  record "$round" "$target" fixed_rps "$(awk -v n="$n" -v d="$dur" 'BEGIN{printf "%.0f", n / d}')"
  record "$round" "$target" fixed_bad "$(h2load_bad "$out")"
  log "round $round, $rate req/s, $target: p50 $p50 µs, p99 $p99 µs, p99.9 $p999 µs ($n answers)"
}

span_sat_run() { # ROUND TARGET [wrk args...]
  local round=$1 target=$2 out=$work/raw/wrk-$2-r$1.txt rps n
  shift 2
  span_start "$target"
  wrk_saturate "$out" "$(url_of "$target")" --latency "$@"
  n=$(wrk_requests "$out")
  span_end "$round" "$target" sat "${n:-0}"
  rps=$(wrk_rps "$out")
  record "$round" "$target" sat_rps "${rps:-NA}"
  record "$round" "$target" sat_bad "$(wrk_bad "$out")"
  log "round $round, wrk -c$wrk_conns, $target: ${rps:-NA} req/s"
}

medians_by_target() { # METRIC...: med[TARGET.METRIC] for every target
  local target metric
  declare -gA med
  for target in "${targets[@]}"; do
    for metric in "$@"; do med[$target.$metric]=$(median "$target" "$metric"); done
  done
}
row() { # LABEL CELL_COMMAND: one cell per target
  local label=$1 cell=$2 target line
  line="| $label |"
  for target in "${targets[@]}"; do line+=" $($cell "$target") |"; done
  echo "$line"
}
m() { echo "${med[$1.$metric]}"; }
added() { [[ $1 == direct ]] && echo "" || diff_us "${med[$1.$metric]}" "${med[direct.$metric]}"; }
vs_direct() { ratio "${med[$1.sat_rps]}" "${med[direct.sat_rps]}"; }
cpu() { [[ $1 == direct ]] && echo "" || echo "${med[$1.$metric]} (${med[$1.${metric}_sys]})"; }
table_head() { # sets header and sep (one column per target) and prints them
  local target
  header="| |"
  sep="|---|"
  for target in "${targets[@]}"; do header+=" $(label_of "$target") |"; sep+="---:|"; done
  echo "$header"
  echo "$sep"
}
latency_and_throughput_rows() {
  metric=fixed_p50 row "$rate req/s: p50 (µs)" m
  metric=fixed_p99 row "$rate req/s: p99 (µs)" m
  metric=fixed_p999 row "$rate req/s: p99.9 (µs)" m
  metric=fixed_p50 row "added p50 vs direct (µs)" added
  metric=fixed_p99 row "added p99 vs direct (µs)" added
  metric=fixed_rps row "rate achieved (req/s)" m
  metric=sat_rps row "saturation, wrk -t1 -c$wrk_conns (req/s)" m
  row "throughput vs direct" vs_direct
}
