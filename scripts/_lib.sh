# Shared by scripts/up, scripts/test and scripts/venv (sourced, not run).
# ensure_venv [EXTRAS]: create .venv if missing and `pip install -e .[EXTRAS]` quietly, skipping the
# install when pyproject.toml has not changed since the last one (stamp file in the venv).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${JOBSERVER_VENV:-$ROOT/.venv}"

log() { printf '%s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = "0" ]; }

apt_install() {
    if ! is_root || ! command -v apt-get >/dev/null; then
        log "error: need Debian packages: $* (run as root or install them yourself)"
        exit 1
    fi
    log "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    log "error: Python 3.11 or newer is required"
    exit 1
}

ensure_venv() {
    local extras="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        local python
        python="$(find_python)"
        log "creating virtualenv $VENV"
        if ! "$python" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$python" -m venv "$VENV"
        fi
    fi
    local hash stamp="$VENV/.jobserver-install"
    hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && grep -qx "$hash ${extras:-base}\|$hash test" "$stamp" &&
        "$VENV/bin/python" -c 'import jobserver' 2>/dev/null; then
        return
    fi
    local spec="$ROOT"
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    log "installing jobserver${extras:+ [$extras]} into $VENV"
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" \
        >"$VENV/pip-install.log" 2>&1; then
        cat "$VENV/pip-install.log" >&2
        log "error: pip install failed"
        exit 1
    fi
    echo "$hash ${extras:-base}" >"$stamp"
}

ensure_postgres_binaries() {
    if [ -n "${JOBSERVER_TEST_DATABASE_URL:-}" ] || [ -n "${PG_BIN:-}" ]; then
        return
    fi
    if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
        return
    fi
    apt_install postgresql
}
