#!/bin/sh
# `make run`: starts berth-exporter and berth-placement (embedded Prometheus)
# on this machine, waits until placement has data about this server, prints
# curl commands that work as printed, then runs in the foreground until
# Ctrl-C, which stops both. `make demo` (DEMO=1) adds a simulated fleet
# (berth-fleetsim) so that choices are interesting.
#
# Environment: BIN (default bin), DATA (default data), EXPORTER_PORT (9830),
# PLACEMENT_PORT (9831), SERVER_NAME (default: hostname), DEMO (1: fleet),
# DEMO_SERVERS (8), SCRAPE_INTERVAL (5s; Prometheus's default is 15s, a
# shorter one gives a first answer sooner).
set -eu

cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DATA=${DATA:-data}
EXPORTER_PORT=${EXPORTER_PORT:-9830}
PLACEMENT_PORT=${PLACEMENT_PORT:-9831}
SERVER_NAME=${SERVER_NAME:-$(hostname)}
DEMO=${DEMO:-0}
DEMO_SERVERS=${DEMO_SERVERS:-8}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s}
# Loopback only: without --web.config.file and --web.bearer-tokens-file the
# API has no authentication, so it is not offered to the network.
HOST=127.0.0.1
EXPORTER=$HOST:$EXPORTER_PORT
PLACEMENT=$HOST:$PLACEMENT_PORT
API=http://$PLACEMENT/api/v1

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"
for b in berth-exporter berth-placement; do
	[ -x "$BIN/$b" ] || die "$BIN/$b not found: run 'make build' first"
done
if [ "$DEMO" = 1 ] && [ ! -x "$BIN/berth-fleetsim" ]; then
	die "$BIN/berth-fleetsim not found: run 'make build' first"
fi
for addr in "$EXPORTER" "$PLACEMENT"; do
	if curl -s -o /dev/null --max-time 2 "http://$addr/"; then
		die "something already listens on $addr (set EXPORTER_PORT / PLACEMENT_PORT, or stop it)"
	fi
done

mkdir -p "$DATA/logs"
DATA_ABS=$(cd "$DATA" && pwd)
LOGS=$DATA_ABS/logs
PIDS=""

stop() {
	trap - INT TERM EXIT
	if [ -n "$PIDS" ]; then
		say ""
		say "stopping (pids$PIDS)"
		# shellcheck disable=SC2086 # word splitting of the pid list is intended
		kill $PIDS 2>/dev/null || true
		# shellcheck disable=SC2086
		wait $PIDS 2>/dev/null || true
	fi
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

# alive NAME PID: fail with the log tail if the process died.
alive() {
	if ! kill -0 "$2" 2>/dev/null; then
		say "$1 exited; last lines of $LOGS/$1.log:" >&2
		tail -n 20 "$LOGS/$1.log" >&2
		exit 1
	fi
}

# wait_http NAME PID URL SECONDS: poll until URL answers 200.
wait_http() {
	i=0
	while ! curl -sf -o /dev/null --max-time 2 "$3"; do
		alive "$1" "$2"
		i=$((i + 1))
		[ "$i" -le "$(($4 * 2))" ] || die "$1 did not answer $3 within $4s (log: $LOGS/$1.log)"
		sleep 0.5
	done
}

"$BIN/berth-exporter" --web.listen-address="$EXPORTER" --server.name="$SERVER_NAME" \
	>"$LOGS/berth-exporter.log" 2>&1 &
EXPORTER_PID=$!
PIDS="$PIDS $EXPORTER_PID"
wait_http berth-exporter "$EXPORTER_PID" "http://$EXPORTER/metrics" 30

# The embedded Prometheus's scrape configuration: this machine's exporter,
# berth-placement itself, and in demo mode the simulated fleet.
PROM_CONFIG=$DATA_ABS/prometheus.yml
cat >"$PROM_CONFIG" <<YAML
# Written by scripts/run.sh; berth-placement --scrape.config-file.
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: berth-exporter
    static_configs: [{targets: ["$EXPORTER"]}]
  - job_name: berth-placement
    static_configs: [{targets: ["$PLACEMENT"]}]
YAML

if [ "$DEMO" = 1 ]; then
	FLEET_SD=$DATA_ABS/fleetsim-targets.json
	"$BIN/berth-fleetsim" --servers="$DEMO_SERVERS" --build-servers=2 --organizations=2 \
		--file-sd.path="$FLEET_SD" >"$LOGS/berth-fleetsim.log" 2>&1 &
	FLEET_PID=$!
	PIDS="$PIDS $FLEET_PID"
	i=0
	while [ ! -s "$FLEET_SD" ]; do
		alive berth-fleetsim "$FLEET_PID"
		i=$((i + 1))
		[ "$i" -le 60 ] || die "berth-fleetsim wrote no targets to $FLEET_SD (log: $LOGS/berth-fleetsim.log)"
		sleep 0.5
	done
	cat >>"$PROM_CONFIG" <<YAML
  - job_name: berth-fleetsim
    file_sd_configs: [{files: ["$FLEET_SD"]}]
YAML
fi

"$BIN/berth-placement" --web.listen-address="$PLACEMENT" --storage.path="$DATA_ABS" \
	--scrape.config-file="$PROM_CONFIG" >"$LOGS/berth-placement.log" 2>&1 &
PLACEMENT_PID=$!
PIDS="$PIDS $PLACEMENT_PID"
wait_http berth-placement "$PLACEMENT_PID" "http://$PLACEMENT/-/ready" 60

say "waiting for the first scrapes and rule evaluations (a few ${SCRAPE_INTERVAL} rounds)..."
i=0
until curl -sf --max-time 5 "$API/servers/$SERVER_NAME" 2>/dev/null | grep -q '"state": "fresh"'; do
	alive berth-placement "$PLACEMENT_PID"
	alive berth-exporter "$EXPORTER_PID"
	i=$((i + 1))
	[ "$i" -le 240 ] || die "server $SERVER_NAME not fresh after 120s: see $API/servers and $LOGS/"
	sleep 0.5
done

cat <<EOF2

Berth is running.
  berth-exporter   http://$EXPORTER/metrics          (this server: $SERVER_NAME)
  berth-placement  http://$PLACEMENT/                (landing page, /metrics, /-/ready)
  PromQL/Grafana   http://$PLACEMENT/prometheus      (Prometheus datasource URL)
  data and logs    $DATA_ABS
EOF2
if [ "$DEMO" = 1 ]; then
	say "  simulated fleet  $DEMO_SERVERS servers (2 build servers, 2 organizations), targets in $FLEET_SD"
fi
cat <<EOF2

Try (copy and paste):

  # every server: cpu, memory, disk, network, freshness, allocations, reservations, headroom
  curl -s $API/servers

  # one server
  curl -s $API/servers/$SERVER_NAME

  # can this server take a deployment of 0.5 CPU, 512 MiB of memory, 1 GiB of disk?
  curl -s -X POST $API/placements/check -H 'Content-Type: application/json' \\
    -d '{"server": "$SERVER_NAME", "requirements": {"cpu": "0.5", "memory": "512m", "disk": "1g"}}'

  # where should it go? choose a server and reserve the capacity for 10 minutes
  curl -s -X POST $API/placements -H 'Content-Type: application/json' \\
    -d '{"requirements": {"cpu": "0.5", "memory": "512m", "disk": "1g"}, "reserve": true, "ttl": "10m", "idempotency_key": "my-first-deployment"}'

  # open reservations (confirm one with POST $API/reservations/<id>/confirm, release it with DELETE)
  curl -s $API/reservations

  # an impossible request is refused, with the reason per server
  curl -s -X POST $API/placements -H 'Content-Type: application/json' -d '{"requirements": {"cpu": 1000}}'

  # the API as an OpenAPI 3 document
  curl -s $API/openapi.json

Press Ctrl-C to stop.
EOF2

# Wait in the foreground; if one process dies, stop the others too.
while :; do
	for p in $PIDS; do
		if ! kill -0 "$p" 2>/dev/null; then
			say "process $p exited; see $LOGS/" >&2
			exit 1
		fi
	done
	sleep 1
done
