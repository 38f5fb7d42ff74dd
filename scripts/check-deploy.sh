#!/usr/bin/env bash
# Checks deploy/: the Prometheus config and alert rules (promtool), the rules' unit tests,
# and the Grafana dashboard (JSON, its datasource, and that every metric its queries and the
# rules use is one the nodes export). Needs promtool (Debian: apt-get install prometheus) and
# python3; installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "promtool is missing: install Prometheus's tools (Debian: apt-get install prometheus)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The scrape config reads the metrics token from the secret compose mounts at run time, and
# `promtool check config` wants every file it names to exist: check a copy that points at an
# empty stand-in instead.
secret=/run/secrets/metrics_token
grep -q "credentials_file: $secret\$" deploy/prometheus/prometheus.yml ||
  { echo "deploy/prometheus/prometheus.yml no longer reads $secret: update this script" >&2; exit 1; }
cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml "$tmp/"
sed -i "s|credentials_file: $secret\$|credentials_file: $tmp/metrics_token|" "$tmp/prometheus.yml"
: >"$tmp/metrics_token"
promtool check config "$tmp/prometheus.yml"

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

python3 - <<'EOF'
import json, os, re, sys

# What the nodes export (`metrics::counter!/gauge!/histogram!` in the Rust sources). The check
# below finds each name there, so a metric renamed in the code fails here instead of leaving a
# panel or an alert silently empty.
KNOWN = {
    # api/src/http/middleware.rs (the duration is a histogram with buckets: _bucket{le})
    "http_requests_total", "http_request_duration_seconds",
    # api/src/server.rs: the node id, {node, version}
    "webcall_node_info",
    # sfu/src/shard.rs (sfu_forward_duration_seconds is a histogram with buckets)
    "sfu_rooms", "sfu_participants", "sfu_peers_disconnected",
    "sfu_packets_in_total", "sfu_packets_out_total", "sfu_bytes_in_total", "sfu_bytes_out_total",
    "sfu_packets_dropped_total", "sfu_forward_duration_seconds", "sfu_ice_restarts_total",
    "sfu_peer_reconnects_total", "sfu_peer_disconnects_total",
    "sfu_peers_connected_total", "sfu_peers_closed_total",
    # sfu/src/tap.rs, sfu/src/lib.rs
    "sfu_tap_dropped_packets_total", "sfu_events_dropped_total",
    # signaling/src/limits.rs, signaling/src/connection/conn.rs
    "ws_sockets_open", "ws_sockets_refused_total", "ws_slow_consumers_dropped_total",
    # api/src/ratelimit/mod.rs, api/src/push/mod.rs
    "rate_limited_total", "push_sent_total", "push_failures_total", "push_queue_depth",
    # transcriber/src/worker.rs and api/src/app/transcription.rs (summaries: {quantile}, _sum, _count)
    "transcriber_utterances_total", "transcriber_whisper_seconds", "transcriber_queue_wait_seconds",
    "transcriber_caption_latency_seconds", "transcriber_dropped_utterances_total",
    # api/src/realtime/redis_bus.rs, signaling/src/hub.rs
    "bus_connected", "bus_reconnects_total", "bus_nodes_expired_total",
}
# Prometheus's own per target.
BUILTIN = {"up"}
SUFFIXES = ("_bucket", "_sum", "_count")
failed = []

sources = ""
for top in ("api/src", "sfu/src", "signaling/src", "transcriber/src"):
    for root, _, files in os.walk(top):
        for f in files:
            if f.endswith(".rs"):
                with open(os.path.join(root, f), encoding="utf-8") as fh:
                    sources += fh.read()
for name in sorted(KNOWN):
    if f'"{name}"' not in sources:
        failed.append(f"{name} is in the known list but no Rust source names it")

def exprs_in_rules(path):
    """(rule name, expr) of each rule; the file's exprs are one line or a `|` block."""
    lines = open(path, encoding="utf-8").read().splitlines()
    out, name, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (?:alert|record): (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr: ?(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", "|-", ">", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i])
                    i += 1
                out.append((name, "\n".join(block)))
                continue
            out.append((name, rest.strip("'\"")))
        i += 1
    return out

rules_path = "deploy/prometheus/alerts.yml"
rules_text = open(rules_path, encoding="utf-8").read()
recorded = set(re.findall(r"^\s*- record: (\S+)", rules_text, re.M))
n_rules = len(re.findall(r"^\s*- (?:alert|record): ", rules_text, re.M))
exprs = [(f"{rules_path} {n}", e) for n, e in exprs_in_rules(rules_path)]
if len(exprs) != n_rules:
    failed.append(f"{rules_path}: found {len(exprs)} exprs for {n_rules} rules (reader out of date?)")

dash_path = "deploy/grafana/dashboards/webcall.json"
try:
    dash = json.load(open(dash_path, encoding="utf-8"))
except ValueError as e:
    sys.exit(f"{dash_path}: not JSON: {e}")
ds = open("deploy/grafana/provisioning/datasources/prometheus.yml", encoding="utf-8").read()
ds_uid = re.search(r"^\s*uid: (\S+)", ds, re.M).group(1)
for panel in dash.get("panels", []):
    title = panel.get("title", "?")
    for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
        if not ref or ref.get("uid") != ds_uid:
            failed.append(f'{dash_path} "{title}": datasource {ref} is not the provisioned uid {ds_uid}')
    for t in panel.get("targets", []):
        exprs.append((f'{dash_path} "{title}"', t.get("expr", "")))

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "offset", "bool", "inf", "nan"}
def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)            # strings (label values)
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges, $__rate_interval
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\boffset\s+\w+", "", e)                   # offset 10m
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if not m.group(2) and m.group(1).lower() not in KEYWORDS:  # "name(" is a function
            names.add(m.group(1))
    return names

def known(name):
    if name in KNOWN or name in BUILTIN or name in recorded:
        return True
    return any(name.endswith(s) and name[: -len(s)] in KNOWN for s in SUFFIXES)

used = set()
for where, expr in exprs:
    if not expr.strip():
        failed.append(f"{where}: empty expr")
    for name in metric_names(expr):
        used.add(name)
        if not known(name):
            failed.append(f"{where}: unknown metric {name}")

if failed:
    print("\n".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"{dash_path}: {len(dash['panels'])} panels; {len(exprs)} queries and rules use "
      f"{len(used)} metric names, all exported by the nodes or recorded by the rules")
EOF
echo "deploy/ checks passed"
