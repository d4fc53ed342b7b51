#!/usr/bin/env bash
# Start or stop a local Ray head (for trying `ray job submit` on one machine).
#
#   infra/local/ray.sh start [STATE_DIR]   # prints the dashboard URL to use as RAY_ADDRESS
#   infra/local/ray.sh stop  [STATE_DIR]
#
# The head runs with `--block` under its own process group; its PID is kept in STATE_DIR/ray.pid and
# stop signals that group, so other Ray instances on the machine are left alone (unlike `ray stop`).
set -euo pipefail
cmd=${1:-}
state=${2:-.cache/ray}
port=${PUBMINE_RAY_PORT:-6380}
dash=${PUBMINE_RAY_DASHBOARD_PORT:-8265}
case "$cmd" in
  start)
    mkdir -p "$state"
    if [ -f "$state/ray.pid" ] && kill -0 "$(cat "$state/ray.pid")" 2>/dev/null; then
      echo "http://127.0.0.1:$dash"; exit 0
    fi
    tmp=$(mktemp -d /tmp/pmray.XXXXXX)   # Ray's socket paths must stay short
    setsid ray start --head --block --port="$port" --dashboard-host=127.0.0.1 --dashboard-port="$dash" \
      --include-dashboard=true --temp-dir="$tmp" --disable-usage-stats >"$state/ray.log" 2>&1 </dev/null &
    echo $! >"$state/ray.pid"
    for _ in $(seq 1 120); do
      if curl -s -o /dev/null "http://127.0.0.1:$dash/api/version"; then echo "http://127.0.0.1:$dash"; exit 0; fi
      kill -0 "$(cat "$state/ray.pid")" 2>/dev/null || break
      sleep 1
    done
    echo "ray.sh: the Ray head did not come up; see $state/ray.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$state/ray.pid" ]; then
      pid=$(cat "$state/ray.pid")
      kill -TERM -- "-$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      rm -f "$state/ray.pid"
    fi
    ;;
  *) echo "usage: infra/local/ray.sh start|stop [STATE_DIR]" >&2; exit 2 ;;
esac
