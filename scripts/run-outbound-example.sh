#!/usr/bin/env bash
# The outbound example: canary routing with failover, all on 127.0.0.1.
# The proxy's outbound listener is an HTTP proxy (as with HTTP_PROXY) for
# the service `checkout` of policies/local-canary; four echo applications
# stand in for its endpoints.
#
#   bash scripts/run-outbound-example.sh          # demo, then serve until Ctrl-C
#   bash scripts/run-outbound-example.sh --once   # demo, then stop
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[[ "${1:-}" == "--once" ]] && once=true
command -v curl >/dev/null || { echo "this example needs curl: apt-get install -y curl"; exit 1; }

echo "== building (release)"
cargo build --release -q -p sluice
cargo build --release -q -p sluice-proxy --example echo_app
sluice=target/release/sluice
echo_app=target/release/examples/echo_app
dir=target/outbound-example
rm -rf "$dir" && mkdir -p "$dir"

$sluice compile policies/local-canary/checkout.sluice -o "$dir/checkout.bundle"
cat > "$dir/proxy.toml" <<TOML
[policy]
bundle = "checkout.bundle"

[admin]
listen = "127.0.0.1:9991"

[[outbound]]
listen = "127.0.0.1:4140"   # the application's HTTP_PROXY
mode = "explicit"
TOML

pids=()
declare -A app
start_app() { $echo_app "127.0.0.1:$1" "$2" 2>/dev/null & app[$1]=$!; pids+=($!); }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

start_app 18081 stable-east-1
start_app 18082 stable-east-2
start_app 18083 stable-west
start_app 18084 canary
$sluice proxy --config "$dir/proxy.toml" --log warn &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:9991/ready >/dev/null 2>&1 && break
  sleep 0.1
done

send() { # N [curl args...]: sends N requests, counts who answered
  local n=$1; shift
  for _ in $(seq "$n"); do
    curl -s -x http://127.0.0.1:4140 "$@" http://checkout:8080/cart/42 | head -1 | cut -d: -f1
  done | sort | uniq -c
}

echo
echo "== 200 reads: about 90% stable-east (two endpoints), 10% canary"
echo "\$ curl -x http://127.0.0.1:4140 http://checkout:8080/cart/42"
send 200
echo
echo "== x-canary: always pins to the canary"
send 5 -H 'x-canary: always'
echo
echo "== both stable-east endpoints stop: traffic fails over to stable-west"
kill "${app[18081]}" "${app[18082]}"; wait "${app[18081]}" "${app[18082]}" 2>/dev/null || true
send 40
echo
echo "== stable-east is back: traffic returns once its breakers let a probe through (backoff 500 ms, doubled per failed probe)"
start_app 18081 stable-east-1
start_app 18082 stable-east-2
sleep 2.5
send 40
echo
echo "== anything but the declared service is egress, and egress is denied"
echo "\$ curl -x http://127.0.0.1:4140 http://example.com/"
curl -s -x http://127.0.0.1:4140 -o /dev/null -w '[HTTP %{http_code}] ' http://example.com/ || true
curl -s -x http://127.0.0.1:4140 -D - -o /dev/null http://example.com/ | grep -i x-sluice-error || true
echo
echo "== metrics"
curl -s http://127.0.0.1:9991/metrics | grep -E '^sluice_(outbound|egress)' || true

if $once; then exit 0; fi
echo
echo "Serving until Ctrl-C: curl -x http://127.0.0.1:4140 http://checkout:8080/anything"
wait
