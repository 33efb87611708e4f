#!/usr/bin/env bash
# Queue benchmark: jobserver and, on request, its peers (PgQueuer, Procrastinate,
# graphile-worker) on one throwaway PostgreSQL 15 cluster. Driven by bench/run.
# Env knobs: PEERS=jobserver[,pgqueuer,procrastinate,graphile]  N=20000  CONCURRENCY=10
#            LONG_N=200000 (the long burn-down; 0: none)  LONG_PROCS=1,2,1t  PROFILE=1
#            PROCS=1,2,1t (t = peer batching knobs)  SKIP_PGBENCH=1  PEERBENCH_DIR=/tmp/peerbench  PGBIN=...
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${PEERBENCH_DIR:-/tmp/jobserver-bench}"
ROOT="$(cd "$HERE/../.." && pwd)"
JOBSERVER_PYTHON="${JOBSERVER_PYTHON:-$ROOT/.venv/bin/python}"
PEERS="${PEERS:-jobserver}"
OUT_JSON="${OUT_JSON:-$WORK/results.json}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
PYTHON="${PYTHON:-python3}"
PGQUEUER_VERSION="${PGQUEUER_VERSION:-1.6.0}"
PROCRASTINATE_VERSION="${PROCRASTINATE_VERSION:-3.10.0}"
GRAPHILE_WORKER_VERSION="${GRAPHILE_WORKER_VERSION:-0.17.3}"
TOTAL_TIMEOUT="${TOTAL_TIMEOUT:-780}"   # hard cap for bench.py (13 min)

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
RUN_DIR="$WORK/runs/$RUN_ID"
DATA="$WORK/cluster"
SOCK="$WORK/sock"
mkdir -p "$RUN_DIR"
exec > >(tee -a "$RUN_DIR/run.log") 2>&1

if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); PGOWNER=postgres; else AS_PG=(); PGOWNER="$(id -un)"; fi
UPTIME_BEFORE="$(uptime)"
echo "== peerbench $RUN_ID  (logs: $RUN_DIR)"
echo "== uptime before: $UPTIME_BEFORE"

# ------------------------------------------------------------------ install
install_python_peers() {
  if [ -x "$WORK/venv/bin/python" ] && "$WORK/venv/bin/python" - "$PGQUEUER_VERSION" "$PROCRASTINATE_VERSION" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = version("pgqueuer") == sys.argv[1] and version("procrastinate") == sys.argv[2]
    version("asyncpg"); version("psycopg"); version("psycopg-binary")
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
EOF
  then return 0; fi
  echo "== installing Python peers into $WORK/venv"
  [ -x "$WORK/venv/bin/python" ] || "$PYTHON" -m venv "$WORK/venv"
  timeout 600 "$WORK/venv/bin/pip" install -q --disable-pip-version-check \
    "pgqueuer==$PGQUEUER_VERSION" "procrastinate==$PROCRASTINATE_VERSION" "psycopg[binary]" asyncpg
}
install_node_peers() {
  local pj="$WORK/node/node_modules/graphile-worker/package.json"
  if [ -f "$pj" ] && node -e "process.exit(require('$pj').version === '$GRAPHILE_WORKER_VERSION' ? 0 : 1)"; then
    return 0
  fi
  echo "== installing graphile-worker into $WORK/node"
  mkdir -p "$WORK/node"
  [ -f "$WORK/node/package.json" ] || echo '{"name":"peerbench-node","private":true}' >"$WORK/node/package.json"
  (cd "$WORK/node" && timeout 600 npm install --no-audit --no-fund --loglevel=error \
    "graphile-worker@$GRAPHILE_WORKER_VERSION")
}
BENCH_PY="$JOBSERVER_PYTHON"
case ",$PEERS," in *,pgqueuer,*|*,procrastinate,*)
  install_python_peers || echo "!! Python peer install failed; those peers will report errors"
  BENCH_PY="$WORK/venv/bin/python";;
esac
case ",$PEERS," in *,graphile,*)
  if command -v node >/dev/null; then
    install_node_peers || echo "!! graphile-worker install failed; it will report an error"
  fi;;
esac

# ------------------------------------------------------------------ cluster
stop_cluster() {
  if [ -f "$DATA/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}
kill_children() {
  # worker process groups that bench.py started (recorded by pid), if it died early
  [ -f "$RUN_DIR/children.pids" ] || return 0
  while read -r pid; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done <"$RUN_DIR/children.pids"
  sleep 1
  while read -r pid; do
    kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$RUN_DIR/children.pids"
}
cleanup() {
  set +e
  kill_children
  stop_cluster
  rm -rf "$DATA" "$SOCK"
  echo "== cluster stopped and removed; uptime after: $(uptime)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_cluster   # a leftover from an interrupted run of ours
rm -rf "$DATA" "$SOCK"
install -d -o "$PGOWNER" -m 700 "$DATA"
install -d -o "$PGOWNER" -m 755 "$SOCK"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$RUN_DIR/initdb.log"
cat >>"$DATA/postgresql.conf" <<EOF

# ---- peerbench: defaults except these ----
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
shared_buffers = 256MB
max_connections = 200
fsync = on
synchronous_commit = on
EOF
# PROFILE=1: per-statement times (pg_stat_statements) in each workload's result; it costs a
# little per statement, so ratios come from runs without it.
[ -n "${PROFILE:-}" ] && echo "shared_preload_libraries = 'pg_stat_statements'" >>"$DATA/postgresql.conf"
touch "$RUN_DIR/postgres.log" && chown "$PGOWNER" "$RUN_DIR/postgres.log"
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$RUN_DIR/postgres.log" -w -t 60 start >/dev/null
echo "== PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data $DATA"

# ------------------------------------------------------------------ bench
ARGS=(--port "$PORT" --pgbin "$PGBIN" --run-dir "$RUN_DIR" --work-dir "$WORK"
      --node-dir "$WORK/node" --python "$WORK/venv/bin/python" --out "$RUN_DIR/results.json"
      --jobserver-python "$JOBSERVER_PYTHON"
      --uptime-before "$UPTIME_BEFORE"
      --peers "$PEERS" --n "${N:-20000}"
      --concurrency "${CONCURRENCY:-10}" --procs "${PROCS:-1,2,1t}"
      --long-n "${LONG_N:-200000}" --long-procs "${LONG_PROCS:-1,2,1t}" --pg-data "$DATA")
[ -n "${SKIP_PGBENCH:-}" ] && ARGS+=(--skip-pgbench)
[ -n "${PROFILE:-}" ] && ARGS+=(--profile)
rc=0
[ -n "${LATENCY_N:-}" ] && ARGS+=(--latency-n "$LATENCY_N")
[ -n "${PGB_SECONDS:-}" ] && ARGS+=(--pgb-seconds "$PGB_SECONDS")
timeout --kill-after=20 "$TOTAL_TIMEOUT" "$BENCH_PY" "$HERE/bench.py" "${ARGS[@]}" || rc=$?
if [ -f "$RUN_DIR/results.json" ]; then
  cp "$RUN_DIR/results.json" "$OUT_JSON"
  echo "== results: $OUT_JSON (copy in $RUN_DIR)"
fi
[ "$rc" = 0 ] || echo "!! bench.py exited with $rc"
exit "$rc"
