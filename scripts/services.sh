#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use answer on 127.0.0.1; start them if not.
# With CI=true, a service that still does not answer is a hard failure, never a skip.
set -u
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || python3 - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "services: PostgreSQL is down; starting it"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "services: Redis is down; starting it"
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
  for _ in $(seq 1 15); do redis_up && break; sleep 1; done
fi

failed=0
pg_up || { echo "services: FATAL: PostgreSQL on 127.0.0.1:5432 is unreachable" >&2; failed=1; }
redis_up || { echo "services: FATAL: Redis on 127.0.0.1:6379 is unreachable" >&2; failed=1; }
exit $failed
