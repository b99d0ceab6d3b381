#!/usr/bin/env bash
# The test command: installs what the tests need, starts the services they use, runs the suite.
# Self-sufficient on a fresh machine (as root, with Debian's and PyPI's registries reachable):
#   - a virtualenv in .venv with this package and its test extras;
#   - the pgvector extension for the machine's PostgreSQL (../shared/scripts/install-pgvector.sh);
#   - PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, started if they are down.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

log() { printf '[test.sh] %s\n' "$*" >&2; }

# 1. Python environment
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
log "installing review-agent with test extras"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -E "^WARNING: Location|^$" || true
.venv/bin/python -c "import review_agent, langgraph, psycopg, redis" >/dev/null

# 2. pgvector for the memory tests
pgvector=""
for candidate in "$here/../shared/scripts/install-pgvector.sh" "${SHARED_DIR:-/nonexistent}/scripts/install-pgvector.sh" /work/shared/scripts/install-pgvector.sh; do
  if [[ -f "$candidate" ]]; then pgvector=$candidate; break; fi
done
if [[ -n "$pgvector" ]]; then
  bash "$pgvector" || log "WARNING: pgvector could not be installed; pgvector tests will fail"
else
  log "WARNING: install-pgvector.sh not found; pgvector tests need the vector extension"
fi

# 3. Services
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# 4. Lint, then the suite (slow crash and fault tests included)
.venv/bin/ruff check review_agent tests bench
log "running pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
