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
routes=${ROUTES:-1000}
rounds=${ROUNDS:-2}
base=${PORT_BASE:-18990}
work=$(mktemp -d /tmp/sluice-bundle-rss.XXXXXX)
if [[ -z ${SLUICES:-} ]]; then
  cargo build --release -q -p sluice
  SLUICES="after=$root/target/release/sluice"
fi
mkdir -p "$work/gen/src"
cat >"$work/gen/Cargo.toml" <<TOML
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
  >"$work/gen/src/main.rs"
cp "$root/Cargo.lock" "$work/gen/"
cargo build --release -q --manifest-path "$work/gen/Cargo.toml" --target-dir "$root/target"
"$root/target/release/sluice-bench-policy" "$routes" >"$work/policy.sluice"

python3 -m http.server $((base + 9)) --bind 127.0.0.1 >/dev/null 2>&1 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
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
    SLUICE_WORKERS=2 "$bin" proxy --config "$work/$name.toml" >"$work/$name-$round.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$base/ready" && break; sleep 0.1; done
    r0=$(kib $pid VmRSS) h0=$(kib $pid VmHWM)
    wrk -t1 -c32 -d3s "http://127.0.0.1:$((base + 1))/api/v1/svc7/items/42/details" >/dev/null 2>&1 || true
    r1=$(kib $pid VmRSS) h1=$(kib $pid VmHWM)
    kill $pid
    wait $pid 2>/dev/null || true
    awk -v n="$name" -v r="$round" -v b="$(stat -c %s "$work/$name.bundle")" -v a="$r0" -v c="$h0" -v d="$r1" -v e="$h1" \
      'BEGIN { printf "| %s | %s | %d | %.1f / %.1f | %.1f / %.1f |\n", n, r, b, a / 1024, c / 1024, d / 1024, e / 1024 }'
  done
done
rm -rf "$work"
