#!/usr/bin/env bash
# Makes the servers and the browser the test suite needs available on a fresh Debian machine (run as root).
# The suite starts its own throwaway PostgreSQL cluster and moto S3 server (tests/conftest.py) and
# stops them at the end; this script only installs what those fixtures run.
#   bash scripts/test-services.sh start   install PostgreSQL if initdb/pg_ctl are missing, and Chromium (idempotent)
#   bash scripts/test-services.sh stop    nothing to stop: the fixtures stop their own servers
set -euo pipefail

find_pg_bin() {
    # Debian installs the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
    local name=$1
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1
}

# apt_install PACKAGE LABEL WHY: install one Debian package (needs root), saying what it is for.
apt_install() {
    local package=$1 label=$2 why=$3
    if [[ $(id -u) -ne 0 ]]; then
        echo "test-services: $label is missing and installing it needs root: sudo bash $0 start" >&2
        exit 1
    fi
    echo "test-services: installing $label from Debian packages$why"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}

start() {
    if [[ -z $(find_pg_bin initdb) || -z $(find_pg_bin pg_ctl) ]]; then
        apt_install postgresql PostgreSQL ""
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        apt_install chromium Chromium " (the console's browser tests)"
    fi
    local initdb
    initdb=$(find_pg_bin initdb)
    if [[ -z $initdb ]]; then
        echo "test-services: initdb still not found after installing postgresql" >&2
        exit 1
    fi
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        echo "test-services: running as root needs the 'postgres' user; reinstall the postgresql package" >&2
        exit 1
    fi
    echo "test-services: PostgreSQL ready ($initdb); moto's S3 server comes from the venv's test extra"
}

case ${1:-} in
    start) start ;;
    stop) echo "test-services: nothing to stop (the test fixtures stop the servers they start)" ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
