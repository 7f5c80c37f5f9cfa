#!/usr/bin/env bash
# A policy shipped through a registry, end to end on this machine: start a
# registry (Debian's docker-registry) on loopback, push and sign a policy,
# start a proxy that pulls it, push a change and watch the proxy switch,
# then push a tampered artifact and watch the proxy refuse it while the
# signed bundle keeps serving.
#
#   bash scripts/fleet-demo.sh
#
# Needs docker-registry (apt-get install docker-registry) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
registry_bin=/usr/bin/docker-registry
[[ -x $registry_bin ]] || { echo "error: $registry_bin is missing (apt-get install docker-registry)" >&2; exit 1; }

echo "== building (release)"
cargo build --release -q -p sluice
cargo build --release -q -p sluice-proxy --example echo_app
sluice=$PWD/target/release/sluice
dir=$PWD/target/fleet-demo
rm -rf "$dir" && mkdir -p "$dir/registry" "$dir/cache"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo "$1"; }
reg_port=$(free_port 5055)
app_port=$(free_port 9191)
proxy_port=$(free_port 9543)
admin_port=$(free_port 9994)
ref=oci://127.0.0.1:$reg_port/demo/policy:live

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "== a registry on 127.0.0.1:$reg_port (storage in $dir/registry)"
cat >"$dir/registry/config.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $dir/registry/storage } }
http: { addr: "127.0.0.1:$reg_port", secret: demo-only-secret }
EOF
"$registry_bin" serve "$dir/registry/config.yml" >"$dir/registry/log" 2>&1 &
pids+=($!)
until curl -fs -o /dev/null "http://127.0.0.1:$reg_port/v2/"; do sleep 0.1; done

policy() { # VERSION: GET /vVERSION/items is the only route, allowed from anyone
  cat <<EOF
server api {
  port 8080
  protocol http
  route items { method GET path "/v$1/items" }
}
allow everyone { to api.items from any }
EOF
}
policy 1 >"$dir/v1.sluice"
policy 2 >"$dir/v2.sluice"
policy 3 >"$dir/evil.sluice"   # never signed: what an attacker pushes

echo "== sluice keys generate, push and sign v1"
"$sluice" keys generate --out "$dir/signer"
"$sluice" push "$dir/v1.sluice" "$ref" --plain-http
"$sluice" sign "$ref" --key "$dir/signer.key" --plain-http

cat >"$dir/proxy.toml" <<EOF
[policy]
source = "$ref"
keys = ["signer.pub"]
plain-http = true
poll-interval-ms = 1000
cache-dir = "cache"

[admin]
listen = "127.0.0.1:$admin_port"

[[inbound]]
listen = "127.0.0.1:$proxy_port"
port = 8080
app = "127.0.0.1:$app_port"
tls = "plaintext"
EOF

echo "== the proxy pulls $ref"
target/release/examples/echo_app "127.0.0.1:$app_port" &
pids+=($!)
"$sluice" proxy --config "$dir/proxy.toml" 2>"$dir/proxy.log" &
pids+=($!)
until curl -fs -o /dev/null "http://127.0.0.1:$admin_port/ready"; do sleep 0.2; done
show() { # what the proxy serves, and two requests through it
  curl -fsS "http://127.0.0.1:$admin_port/policy" | tr -d '\n' | head -c 400
  echo
  for v in 1 2 3; do
    printf '   GET /v%s/items -> %s\n' "$v" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$proxy_port/v$v/items")"
  done
}
show

wait_for_hash() { # HASH
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$admin_port/policy" | grep -q "$1" && return 0
    sleep 0.1
  done
  echo "error: the proxy did not switch to $1 (see $dir/proxy.log)" >&2
  exit 1
}

echo "== push and sign v2; the proxy switches within a poll"
v2_digest=$("$sluice" push "$dir/v2.sluice" "$ref" --plain-http)
echo "$v2_digest"
"$sluice" sign "$ref" --key "$dir/signer.key" --plain-http
"$sluice" compile "$dir/v2.sluice" -o "$dir/v2.bundle" >/dev/null
v2_hash=$("$sluice" inspect "$dir/v2.bundle" | awk '/^hash /{sub(",", "", $2); print $2; exit}')
wait_for_hash "$v2_hash"
show

refusal() { # the proxy's last refusal, and the fetch counters
  sleep 2.5
  grep -a "policy fetch failed" "$dir/proxy.log" | tail -n 1 | sed "s/\x1b\[[0-9;]*m//g" | cut -c 1-600 || true
  curl -fsS "http://127.0.0.1:$admin_port/metrics" | grep '^sluice_policy_fetch_total'
  show
}

echo "== tampering 1: another policy pushed under the tag, unsigned: refused, v2 keeps serving"
evil_digest=$("$sluice" push "$dir/evil.sluice" "$ref" --plain-http)
refusal

echo "== tampering 2: v2's signature copied onto that artifact's digest: refused, v2 keeps serving"
manifests=http://127.0.0.1:$reg_port/v2/demo/policy/manifests
oci=application/vnd.oci.image.manifest.v1+json
curl -fsS -H "Accept: $oci" "$manifests/${v2_digest/:/-}.sig" >"$dir/v2.sig.json"
curl -fsS -X PUT -H "Content-Type: $oci" --data-binary @"$dir/v2.sig.json" "$manifests/${evil_digest/:/-}.sig" -o /dev/null
refusal

echo "== done (everything is in $dir)"
