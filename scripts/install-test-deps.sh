#!/bin/sh
# Installs the Debian packages Berth's integration tests run against, when
# they are missing and we are root. Elsewhere it only says what is missing:
# the tests then skip loudly (or fail, under BERTH_REQUIRE_INTEGRATION=1).
set -eu

packages="prometheus prometheus-alertmanager prometheus-node-exporter podman runc busybox-static docker.io curl"
missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps: missing Debian packages:$missing (run as root on Debian to install them)" >&2
	exit 0
fi
echo "install-test-deps: installing Debian packages:$missing (first run: about a minute)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
# Debian's packages may start their services; tests start their own
# instances on loopback ports, so stop the ones just installed (never a
# service that was there before).
for p in $missing; do
	case $p in
	prometheus | prometheus-alertmanager | prometheus-node-exporter) s=$p ;;
	docker.io) s=docker ;;
	*) continue ;;
	esac
	if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
done
echo "install-test-deps: done"
