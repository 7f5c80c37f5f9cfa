#!/usr/bin/env bash
# The main job: the proxy enforcing the seed example policy ("only GET
# /metrics over mTLS from clients in namespace foo") in front of a small
# application, with a CA and SVIDs generated on the spot.
#
#   bash scripts/run-example.sh          # demo requests, then serve until Ctrl-C
#   bash scripts/run-example.sh --once   # demo requests, then stop
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[[ "${1:-}" == "--once" ]] && once=true

echo "== building (release)"
cargo build --release -q -p sluice
cargo build --release -q -p sluice-proxy --example echo_app
sluice=target/release/sluice
dir=target/example
rm -rf "$dir" && mkdir -p "$dir/id"

echo "== sluice lint + compile policies/seed"
$sluice lint policies/seed/seed.sluice && echo "no problems"
$sluice compile policies/seed/seed.sluice -o "$dir/seed.bundle"
$sluice inspect "$dir/seed.bundle" | head -3

echo "== sluice identity: a CA for cluster.local and three SVIDs"
$sluice identity ca --trust-domain cluster.local --out "$dir/id"
$sluice identity issue --ca "$dir/id" --id spiffe://cluster.local/ns/default/sa/metrics --out "$dir/id/server"
$sluice identity issue --ca "$dir/id" --id spiffe://cluster.local/ns/foo/sa/prometheus --out "$dir/id/foo"
$sluice identity issue --ca "$dir/id" --id spiffe://cluster.local/ns/bar/sa/scraper --out "$dir/id/bar"

cat > "$dir/proxy.toml" <<TOML
# The seed policy's server \`metrics\` listens on port 9090 in the policy;
# here the proxy listens on 127.0.0.1:9443 and forwards to the app on 9091.
[policy]
bundle = "seed.bundle"

[admin]
listen = "127.0.0.1:9990"

[identity]
cert = "id/server.pem"
key = "id/server.key"
trust-bundles = { "cluster.local" = "id/ca.pem" }

[[inbound]]
listen = "127.0.0.1:9443"
port = 9090
app = "127.0.0.1:9091"
tls = "permissive"   # mTLS and plaintext on one port, for the demo

[log]
decision-log = "decisions.jsonl"
TOML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

target/release/examples/echo_app 127.0.0.1:9091 &
pids+=($!)
$sluice proxy --config "$dir/proxy.toml" &
pids+=($!)

for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/9990) 2>/dev/null && \
     { exec 3<>/dev/tcp/127.0.0.1/9990; printf 'GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >&3; head -1 <&3; } | grep -q 200; then
    break
  fi
  sleep 0.1
done
echo "== proxy ready on 127.0.0.1:9443 (admin on 127.0.0.1:9990)"

# SVIDs name a SPIFFE ID, not a host name, so curl cannot match the server
# certificate to `127.0.0.1`: `-k` skips that check. The proxy still checks
# the client certificate against the cluster.local CA.
allowed="curl -sk --cert $dir/id/foo.pem --key $dir/id/foo.key https://127.0.0.1:9443/metrics"
denied="curl -sk --cert $dir/id/bar.pem --key $dir/id/bar.key https://127.0.0.1:9443/metrics"
plain="curl -s http://127.0.0.1:9443/metrics"
noroute="curl -sk --cert $dir/id/foo.pem --key $dir/id/foo.key https://127.0.0.1:9443/admin"
cat <<TEXT

Send it requests (from this folder, while it runs):
  allowed   (namespace foo):   $allowed
  denied    (namespace bar):   $denied
  denied    (no certificate):  $plain
  no route  (404):             $noroute
  metrics:                     curl -s http://127.0.0.1:9990/metrics
  decision log:                $dir/decisions.jsonl
TEXT

if command -v curl >/dev/null; then
  for what in allowed denied plain noroute; do
    echo
    echo "\$ ${!what}"
    ${!what} -w '[HTTP %{http_code}]\n' || true
  done
  echo
  echo "\$ curl -s http://127.0.0.1:9990/metrics | grep sluice_inbound_requests_total"
  curl -s http://127.0.0.1:9990/metrics | grep '^sluice_inbound_requests_total' || true
else
  echo "(curl is not installed: apt-get install -y curl to run the requests above)"
fi

if $once; then exit 0; fi
echo
echo "Serving until Ctrl-C."
wait "${pids[1]}"
