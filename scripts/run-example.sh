#!/usr/bin/env bash
# The main job, until the proxy lands: lint, compile, inspect and evaluate
# the seed example policy ("only GET /metrics over mTLS from clients in
# namespace foo"), then run every example policy's conformance file.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sluice
sluice=target/release/sluice
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== sluice lint policies/seed"
$sluice lint policies/seed/seed.sluice && echo "no problems"

echo "== sluice compile policies/seed -o $out/seed.bundle"
$sluice compile policies/seed/seed.sluice -o "$out/seed.bundle"

echo "== sluice inspect"
$sluice inspect "$out/seed.bundle"

echo "== sluice eval --explain (three requests)"
$sluice eval --bundle "$out/seed.bundle" --explain <<'JSON'
{"direction":"inbound","port":9090,"method":"GET","path":"/metrics","peer":{"ip":"10.0.0.7","identity":"spiffe://cluster.local/ns/foo/sa/prometheus"}}
{"direction":"inbound","port":9090,"method":"GET","path":"/metrics","peer":{"ip":"10.0.0.8","identity":"spiffe://cluster.local/ns/bar/sa/scraper"}}
{"direction":"inbound","port":9090,"method":"GET","path":"//metrics/./","peer":{"ip":"10.0.0.9"}}
JSON

echo "== sluice test policies"
$sluice test policies
