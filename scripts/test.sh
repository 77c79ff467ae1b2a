#!/usr/bin/env bash
# Runs the project's tests: makes sure the servers the tests talk to are installed and
# running (installing and starting them when missing), then runs `cargo test`.
#
# Usage: scripts/test.sh [extra cargo test args]
# Servers: set MICRO_TEST_SERVERS to a space-separated subset to check (default: all that
# the test suite uses). In CI (CI=true) a server that cannot be started is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Servers the tests need today (the nats plugin: nats-server with JetStream on 4222, and
# the nats-server binary for the fault tests, which start their own on a spare port).
# PostgreSQL (database `test`, trust auth) for the postgres store, redis-server (and its
# binary, for the redis fault tests) for the redis plugins, etcd on 2379 (and its binary,
# for the etcd fault tests) for the etcd plugins.
# `python` is not a server: the grpc plugin's interop test runs a Python grpcio client from a
# virtual environment.
SERVERS="${MICRO_TEST_SERVERS-nats postgres redis etcd python}"

log() { printf '[test.sh] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_ready=""
apt_install() {
  if [ -z "$apt_ready" ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_ready=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not come up on 127.0.0.1:$port"
  return 1
}

ensure_nats() {
  # The binary too: the fault tests start their own nats-server on a spare port.
  command -v nats-server >/dev/null || apt_install nats-server
  port_open 4222 && return 0
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 nats
}

ensure_redis() {
  # The binary too: the fault tests start their own redis-server on a spare port.
  command -v redis-server >/dev/null || apt_install redis-server
  port_open 6379 && return 0
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 redis
}

ensure_etcd() {
  # The binary too: the fault tests start their own etcd on spare ports.
  command -v etcd >/dev/null || apt_install etcd-server
  port_open 2379 && return 0
  # Debian's etcd-server 3.4; only 127.0.0.1, one member, data under /var/lib, history
  # compacted hourly so repeated runs do not grow it without end.
  mkdir -p /var/lib/etcd-micro
  start-stop-daemon --start --oknodo --background --exec "$(command -v etcd)" -- \
    --name default --data-dir /var/lib/etcd-micro \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --auto-compaction-retention=1 \
    --logger=zap --log-outputs=/var/log/etcd-micro.log
  wait_port 2379 etcd
}

ensure_postgres() {
  if ! port_open 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_port 5432 postgres
  fi
  # The tests use database `test` with trust auth.
  if ! psql -h 127.0.0.1 -U postgres -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw test; then
    createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
  fi
}

# etcd-client (the etcd plugins) compiles etcd's .proto files with protoc in its build script.
if ! command -v protoc >/dev/null && [ -z "${PROTOC:-}" ]; then
  apt_install protobuf-compiler
fi
# The etcd TLS test makes its CA and certificates with the openssl command.
command -v openssl >/dev/null || apt_install openssl
# The Python grpcio client of micro-plugins/grpc/tests/python.rs: a venv with grpcio, its
# code generator, health checking and reflection (made and filled when missing). The test
# finds it through MICRO_PYTHON; with CI=true it fails when MICRO_PYTHON is not set.
ensure_python() {
  local venv="${MICRO_VENV:-$HOME/.cache/micro/venv}"
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  if ! "$venv/bin/python" -c "import grpc, grpc_tools, grpc_health, grpc_reflection" 2>/dev/null; then
    log "pip install grpcio grpcio-tools grpcio-health-checking grpcio-reflection into $venv"
    "$venv/bin/python" -m pip install -q grpcio grpcio-tools grpcio-health-checking grpcio-reflection
  fi
  export MICRO_PYTHON="$venv/bin/python"
}

for server in $SERVERS; do
  if ! "ensure_$server"; then
    log "server $server is not available"
    exit 1
  fi
done

# schemathesis for micro-cli's tests/openapi.rs (the gateway's OpenAPI document fuzzed):
# a Python virtual environment under the cache, made and filled when missing.
ensure_schemathesis() {
  local venv="${MICRO_VENV:-$HOME/.cache/micro/venv}"
  if [ ! -x "$venv/bin/python" ]; then
    log "python3 -m venv $venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  if [ ! -x "$venv/bin/st" ]; then
    log "pip install schemathesis into $venv"
    "$venv/bin/python" -m pip install -q schemathesis
  fi
  export MICRO_VENV="$venv"
}
if ! ensure_schemathesis; then
  log "schemathesis could not be installed"
  exit 1
fi

status=0
# The nats, postgres, redis, zap, etcd, quic, mdns and grpc features are on so the facade's tests
# also build and run them.
FEATURES=micro/nats,micro/postgres,micro/redis,micro/zap,micro/etcd,micro/quic,micro/mdns,micro/grpc,micro-cli/nats
log "cargo test --workspace --exclude micro-example-plugin --features $FEATURES --no-fail-fast $*"
cargo test --workspace --exclude micro-example-plugin --features "$FEATURES" --no-fail-fast "$@" \
  || status=$?
# The example plugin on its own: built this way, micro-core is compiled without its
# `service` feature, as an out-of-tree plugin sees it.
log "cargo test -p micro-example-plugin --no-fail-fast $*"
cargo test -p micro-example-plugin --no-fail-fast "$@" || status=$?
exit "$status"
