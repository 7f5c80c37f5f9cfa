#!/usr/bin/env bash
# Resident memory of `sluice proxy` holding the decision benchmarks'
# 1,000-route policy (benches/src/lib.rs), for one or more binaries side by
# side: each compiles the policy with its own `compile` (so each holds its
# own bundle format), starts with one plaintext listener, is read when ready
# and after 3 s of `wrk -t1 -c32` (the peer has no identity: 403s, the whole
# decision runs). Rounds alternate the binaries.
#
#   SLUICES="before=/work/before/target/release/sluice after=target/release/sluice" \
#     bash benches/proxy/bundle-rss.sh
#
# Knobs: SLUICES (default: after=target/release/sluice, built), ROUTES (1000),
# ROUNDS (2), PORT_BASE (18990). Needs wrk, curl and python3 (the upstream).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. "$root/benches/proxy/lib.sh"
routes=${ROUTES:-1000}
rounds=${ROUNDS:-2}
base=${PORT_BASE:-18990}
make_work bundle-rss
if [[ -z ${SLUICES:-} ]]; then
  cargo build --release -q -p sluice
  SLUICES="after=$root/target/release/sluice"
fi
write_bench_policy "$routes" "$work/policy.sluice"

python3 -m http.server $((base + 9)) --bind 127.0.0.1 >/dev/null 2>&1 &
pids+=($!)
echo "| binary | round | bundle bytes | VmRSS / VmHWM when ready (MiB) | VmRSS / VmHWM after load (MiB) |"
echo "|---|---:|---:|---:|---:|"
for round in $(seq "$rounds"); do
  for pair in $SLUICES; do
    name=${pair%%=*} bin=${pair#*=}
    "$bin" compile "$work/policy.sluice" -o "$work/$name.bundle" >/dev/null 2>&1
    cat >"$work/$name.toml" <<TOML
[policy]
bundle = "$work/$name.bundle"
[admin]
listen = "127.0.0.1:$base"
[[inbound]]
listen = "127.0.0.1:$((base + 1))"
port = 8080
app = "127.0.0.1:$((base + 9))"
tls = "plaintext"
TOML
    SLUICE_WORKERS=2 "$bin" proxy --config "$work/$name.toml" >"$work/raw/$name-$round.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_for "http://127.0.0.1:$base/ready" 10
    read -r r0 h0 < <(mem_of_pid "$pid")
    wrk -t1 -c32 -d3s "http://127.0.0.1:$((base + 1))/api/v1/svc7/items/42/details" >/dev/null 2>&1 || true
    read -r r1 h1 < <(mem_of_pid "$pid")
    stop_pid "$pid"
    awk -v n="$name" -v r="$round" -v b="$(stat -c %s "$work/$name.bundle")" -v a="$r0" -v c="$h0" -v d="$r1" -v e="$h1" \
      'BEGIN { printf "| %s | %s | %d | %.1f / %.1f | %.1f / %.1f |\n", n, r, b, a / 1024, c / 1024, d / 1024, e / 1024 }'
  done
done
