#!/usr/bin/env bash
# A fleet on one machine: one registry (Debian's docker-registry) or one
# nginx serving an image layout, and PROXIES real `sluice proxy` processes
# polling it every INTERVAL_MS with jitter. Measures, per source:
#
# - rollout: from the moment a new signed artifact is tagged until each
#   proxy logs that it serves the new bundle hash (p50, p99, max over the
#   proxies), and how many made it within one interval plus 2 s;
# - steady state: requests per second at the source while nothing changes,
#   and how many of them fetched a blob (the goal is none);
# - bytes the source sent for the rollout, in total and per proxy;
# - each proxy's resident memory (median and max VmRSS).
#
#   bash benches/fleet/rollout.sh                    # 100 proxies, 2 s, both sources
#   PROXIES=10 SOURCES=registry bash benches/fleet/rollout.sh
#   QUICK=1 BUILD=debug bash benches/fleet/rollout.sh   # CI's smoke run: 5 proxies
#
# Knobs: PROXIES (100; QUICK=1: 5), INTERVAL_MS (2000), STEADY_SECONDS
# (10; QUICK=1: 4), SOURCES ("registry nginx"), ADMIN_BASE (21000),
# BUILD=debug to use target/debug binaries. Needs docker-registry, nginx,
# curl and python3 (installed with apt-get when missing). Writes a summary
# table to stdout and raw outputs (logs, access logs, results.tsv) to a
# temp folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=../proxy/lib.sh
source benches/proxy/lib.sh

if [[ ${QUICK:-0} == 1 ]]; then
  proxies=${PROXIES:-5}
  steady=${STEADY_SECONDS:-4}
else
  proxies=${PROXIES:-100}
  steady=${STEADY_SECONDS:-10}
fi
interval_ms=${INTERVAL_MS:-2000}
sources=${SOURCES:-registry nginx}
admin_base=${ADMIN_BASE:-21000}
registry_bin=/usr/bin/docker-registry

ensure_tools docker-registry python3
[[ -x $registry_bin ]] || die "$registry_bin is missing (apt-get install docker-registry)"
build_binaries
make_work sluice-fleet
ulimit -n 65536 2>/dev/null || true

# ------------------------------------------------------------ policies and key
policy() { # PATH VERSION: a small policy whose hash depends on VERSION
  cat >"$1" <<EOF
mesh { trust-domain "cluster.local" }
server api {
  port 8080
  protocol http
  route read { method GET path "/v$2/items" }
}
allow readers {
  to   api.read
  from namespace "foo"
}
EOF
}
policy "$work/v1.sluice" 1
policy "$work/v2.sluice" 2
"$sluice" keys generate --out "$work/signer" >/dev/null
hash_of() { "$sluice" compile "$1" -o "$work/tmp.bundle" >/dev/null && "$sluice" inspect "$work/tmp.bundle" | awk '/^hash /{sub(",", "", $2); print $2; exit}'; }
v1_hash=$(hash_of "$work/v1.sluice")
v2_hash=$(hash_of "$work/v2.sluice")
[[ -n $v1_hash && -n $v2_hash && $v1_hash != "$v2_hash" ]] || die "could not read the two bundle hashes ($v1_hash, $v2_hash)"
log "v1 hash $v1_hash, v2 hash $v2_hash"

# ------------------------------------------------------------ sources
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # sets source_ref, access_log, source_pid
  local dir=$work/registry port
  mkdir -p "$dir/storage"
  port=$(free_port)
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
  secret: bench-only-secret
EOF
  # The access log (combined format) goes to stdout.
  "$registry_bin" serve "$dir/config.yml" >"$dir/access.log" 2>"$dir/registry.err" &
  source_pid=$!
  pids+=("$source_pid")
  wait_for "http://127.0.0.1:$port/v2/" 10 || die "the registry did not start (see $dir/registry.err)"
  access_log=$dir/access.log
  source_ref=oci://127.0.0.1:$port/fleet/policy:live
}

start_layout_server() { # sets source_ref, access_log, source_pid, layout
  local dir=$work/nginx port
  mkdir -p "$dir/www"
  # nginx's workers run as nobody when started by root: the folders must be
  # theirs to walk (mktemp made the work folder 0700).
  chmod 755 "$work" "$dir" "$dir/www"
  port=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
error_log $dir/error.log;
pid $dir/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
$(nginx_temp_paths "$dir")
  types { application/json json; }
  default_type application/octet-stream;
  log_format bytes '\$remote_addr - - [\$time_local] "\$request" \$status \$body_bytes_sent';
  access_log $dir/access.log bytes;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
EOF
  start_nginx "$dir"
  source_pid=$nginx_started
  wait_for_answer "http://127.0.0.1:$port/" 10 || die "nginx did not start (see $dir/error.log)"
  access_log=$dir/access.log
  layout=$dir/www/fleet/policy
  source_ref=http://127.0.0.1:$port/fleet/policy:live
}

publish() { # POLICY: pushes and signs it under source_ref's tag
  local target=$source_ref
  [[ $target == http://* ]] && target=oci:$layout:live
  "$sluice" push "$1" "$target" --plain-http >"$work/push.out"
  "$sluice" sign "$target" --key "$work/signer.key" --plain-http >>"$work/push.out"
}

# ------------------------------------------------------------ proxies
start_proxies() { # NAME
  local i dir
  proxy_pids=()
  for ((i = 0; i < proxies; i++)); do
    dir=$work/$1/proxy-$i
    mkdir -p "$dir"
    cp "$work/signer.pub" "$dir/signer.pub"
    cat >"$dir/proxy.toml" <<EOF
[policy]
source = "$source_ref"
keys = ["signer.pub"]
plain-http = true
poll-interval-ms = $interval_ms

[admin]
listen = "127.0.0.1:$((admin_base + i))"
EOF
    SLUICE_LOG=info NO_COLOR=1 "$sluice" proxy --config "$dir/proxy.toml" 2>"$dir/proxy.log" &
    proxy_pids+=($!)
    pids+=($!)
  done
}

stop_proxies() {
  local pid
  for pid in "${proxy_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${proxy_pids[@]}"; do stop_pid "$pid"; done
}

wait_all_serving() { # HASH SECONDS
  local i
  for ((i = 0; i < proxies; i++)); do
    local deadline=$((SECONDS + $2))
    until curl -fsS --max-time 2 "http://127.0.0.1:$((admin_base + i))/policy" 2>/dev/null | grep -q "$1"; do
      ((SECONDS < deadline)) || die "proxy $i does not serve $1 (see its log)"
      sleep 0.1
    done
  done
}

rss_stats() { # prints "median max" VmRSS in kB over the proxies
  local pid
  for pid in "${proxy_pids[@]}"; do awk '/^VmRSS/{print $2}' "/proc/$pid/status"; done |
    sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)], a[NR]}'
}

# The rollout times: the first log line of each proxy that names the new
# hash, minus the time the tag moved (both UTC, microseconds).
rollout_stats() { # NAME HASH T0
  python3 - "$work/$1" "$2" "$3" "$proxies" "$interval_ms" <<'PY'
import datetime, glob, re, sys
folder, new_hash, t0, n, interval_ms = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ansi = re.compile(r"\x1b\[[0-9;]*m")
times = []
for path in sorted(glob.glob(f"{folder}/proxy-*/proxy.log")):
    for line in open(path, errors="replace"):
        line = ansi.sub("", line)
        if new_hash in line and ("loaded" in line or "serving" in line or "installed" in line):
            stamp = line.split()[0]
            t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            times.append(t - t0)
            break
times.sort()
def pct(p):
    return times[min(len(times) - 1, int(p * len(times)))] if times else float("nan")
within = sum(1 for t in times if t <= interval_ms / 1000 + 2)
print(f"{len(times)} {pct(0.5):.3f} {pct(0.99):.3f} {times[-1] if times else float('nan'):.3f} {within}")
PY
}

count_requests() { # FROM_LINE: requests in the access log after line FROM_LINE: "all manifest blob bytes"
  tail -n +"$(($1 + 1))" "$access_log" | awk '
    /"(GET|HEAD) / {
      n++
      if ($0 ~ /\/manifests\// || $0 ~ /index\.json/) m++
      else if ($0 ~ /\/blobs\//) b++
      # bytes: the field after the status, combined or our "bytes" format
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9][0-9][0-9]$/ && $(i + 1) ~ /^[0-9-]+$/) { if ($(i + 1) != "-") bytes += $(i + 1); break }
    }
    END { printf "%d %d %d %d\n", n, m, b, bytes }'
}

printf 'source\tproxies\tinterval_ms\tsteady_rps\tsteady_manifest_rps\tsteady_blob_requests\trollout_served\trollout_p50_s\trollout_p99_s\trollout_max_s\twithin_interval_plus_2s\trollout_requests\trollout_bytes\tbytes_per_proxy\trss_median_kb\trss_max_kb\n' >"$work/fleet.tsv"

for name in $sources; do
  log "== $name: $proxies proxies polling every $interval_ms ms"
  case $name in
    registry) start_registry ;;
    nginx) start_layout_server ;;
    *) die "unknown source $name (registry or nginx)" ;;
  esac
  publish "$work/v1.sluice"
  start_proxies "$name"
  wait_all_serving "$v1_hash" 120
  log "all $proxies serve v1; steady state for $steady s"
  sleep 1
  from=$(wc -l <"$access_log")
  sleep "$steady"
  read -r s_all s_manifest s_blob _ < <(count_requests "$from")
  steady_rps=$(calc "printf \"%.1f\", $s_all / $steady")
  steady_mrps=$(calc "printf \"%.1f\", $s_manifest / $steady")
  read -r rss_med rss_max < <(rss_stats)

  log "rollout: publishing v2"
  from=$(wc -l <"$access_log")
  publish "$work/v2.sluice"
  t0=$(date +%s.%N)
  wait_all_serving "$v2_hash" 120
  sleep 0.5
  read -r r_all _ _ r_bytes < <(count_requests "$from")
  read -r served p50 p99 max within < <(rollout_stats "$name" "$v2_hash" "$t0")
  per_proxy=$(calc "printf \"%.0f\", $r_bytes / $proxies")
  printf '%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n' \
    "$name" "$proxies" "$interval_ms" "$steady_rps" "$steady_mrps" "$s_blob" "$served" "$p50" "$p99" "$max" "$within" \
    "$r_all" "$r_bytes" "$per_proxy" "$rss_med" "$rss_max" >>"$work/fleet.tsv"
  stop_proxies
  stop_pid "$source_pid"
done

column -t -s $'\t' "$work/fleet.tsv"
cp "$work/fleet.tsv" "$work/results.tsv"
