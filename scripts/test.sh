#!/usr/bin/env bash
# The test command: installs what the tests need, starts the services they use, runs the suite.
# Self-sufficient on a fresh machine (as root, with Debian's and PyPI's registries reachable):
#   - a virtualenv in .venv with this package and its test extras (again when pyproject.toml
#     changes);
#   - the pgvector extension for the machine's PostgreSQL, with the machine's install script
#     (install-pgvector.sh beside this checkout, or in $SHARED_DIR) when it has one;
#   - PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, started if they are down.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"`. A -m expression that
# selects no test marked `postgres` needs no PostgreSQL and no pgvector, one that selects no test
# marked `redis` no Redis: the unit tier, `scripts/test.sh -m "not slow and not postgres and not
# redis"`, runs on a machine without either.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

log() { printf '[test.sh] %s\n' "$*" >&2; }

# Bytecode, and pytest's assert-rewritten test modules, are cached in __pycache__ (ignored by
# git). With PYTHONDONTWRITEBYTECODE set, every run - and every CLI subprocess a test starts -
# compiles the package and the tests again: about half of collection's CPU time.
unset PYTHONDONTWRITEBYTECODE

# 1. Python environment (installed again only when pyproject.toml changed: the package is
#    editable, so a change to the code needs no reinstall)
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.review-agent-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  log "installing review-agent with test extras"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -E "^WARNING: Location|^$" || true
  .venv/bin/python -c "import review_agent, langgraph, psycopg, redis" >/dev/null
  echo "$wanted" > "$stamp"
fi

# Which services the selected tests need: a test marked `postgres` (or `redis`) can be selected
# unless a -m expression rules out every combination of markers that includes it.
mark_expr=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    -m) mark_expr="${args[i + 1]:-}" ;;
    -m?*) mark_expr="${args[i]#-m}" ;;
  esac
done
needs() {
  .venv/bin/python - "$1" "$mark_expr" <<'PYEOF'
import itertools
import re
import sys

marker, expr = sys.argv[1], sys.argv[2]
if not expr.strip() or not re.fullmatch(r"[\w\s()]+", expr):
    sys.exit(0)  # no expression, or one this check does not understand: assume it is needed


class Marks(dict):
    def __missing__(self, key):  # markers other than these: a test may lack them
        return False


names = ("slow", "postgres", "redis")
for bits in itertools.product((False, True), repeat=len(names)):
    marks = Marks(zip(names, bits))
    if marks[marker]:
        try:
            if eval(expr, {"__builtins__": {}}, marks):
                sys.exit(0)
        except Exception:
            sys.exit(0)
sys.exit(1)
PYEOF
}
need_postgres=1 need_redis=1
needs postgres || need_postgres=0
needs redis || need_redis=0

# 2. pgvector for the memory tests
if ((need_postgres)); then
  pgvector=""
  for candidate in "$here/../shared/scripts/install-pgvector.sh" "${SHARED_DIR:-/nonexistent}/scripts/install-pgvector.sh" /work/shared/scripts/install-pgvector.sh; do
    if [[ -f "$candidate" ]]; then pgvector=$candidate; break; fi
  done
  if [[ -n "$pgvector" ]]; then
    bash "$pgvector" || log "WARNING: pgvector could not be installed; pgvector tests will fail"
  else
    log "WARNING: install-pgvector.sh not found; pgvector tests need the vector extension"
  fi
fi

# 3. Services
if ((need_postgres)) && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ((need_redis)) && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
((need_postgres)) || log "no test marked postgres is selected: PostgreSQL and pgvector not needed"
((need_redis)) || log "no test marked redis is selected: Redis not needed"

# 4. Lint, then the suite (slow crash and fault tests included)
.venv/bin/ruff check review_agent tests bench
log "running pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
