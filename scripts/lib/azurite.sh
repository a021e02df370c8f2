# shellcheck shell=bash
# Helpers shared by scripts/test.sh and scripts/demo.sh: install and run a
# local Azurite blob emulator, and make sure FUSE is usable.
#
# Source it (`. scripts/lib/azurite.sh`); callers are expected to run with
# `set -euo pipefail`. Every function returns non-zero on failure.

# Repo top: this file lives in <root>/scripts/lib/.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

AZURITE_VERSION="3.37.0"
AZURITE_PREFIX="$ROOT/.tools/azurite"
AZURITE_BIN="$AZURITE_PREFIX/node_modules/.bin/azurite-blob"

_log() { printf '[azurite.sh] %s\n' "$*" >&2; }

# Run a command as root (directly if we already are, else via sudo).
_as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _log "need root for: $*"
        return 1
    fi
}

# Install the pinned Azurite into $ROOT/.tools/azurite unless already there.
azurite_install() {
    if [[ -x $AZURITE_BIN ]]; then
        return 0
    fi
    _log "installing azurite@$AZURITE_VERSION into $AZURITE_PREFIX"
    mkdir -p "$AZURITE_PREFIX"
    # Azurite 3.37 declares engines.node >=22 but runs on node 20; npm only
    # warns (EBADENGINE) about it, so --loglevel=error keeps that quiet.
    npm install --prefix "$AZURITE_PREFIX" --no-audit --no-fund \
        --loglevel=error azurite@"$AZURITE_VERSION" >/dev/null
    [[ -x $AZURITE_BIN ]] || { _log "azurite-blob missing after npm install"; return 1; }
}

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race is acceptable).
_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# True if the pid in <statedir>/azurite.pid is alive and really is Azurite
# (guards against a stale pid file whose pid got reused).
azurite_alive() {
    local pidfile="$1/azurite.pid" pid
    [[ -s $pidfile ]] || return 1
    pid="$(<"$pidfile")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q azurite
}

# azurite_start <statedir> [extra azurite-blob args...]
# Starts Azurite on a free port and exports AZURITE_BLOB_ENDPOINT.
# In-memory persistence is the default unless the caller passes --location.
# Set AZURITE_DETACH=1 to run it in its own session (survives the caller,
# used by the demo); otherwise it stays in the caller's process group.
azurite_start() {
    local statedir="${1:?usage: azurite_start <statedir> [args...]}"
    shift
    local log="$statedir/azurite.log" pidfile="$statedir/azurite.pid"
    local port pid code arg i
    # --disableTelemetry: otherwise Azurite phones home (it even probes the
    # cloud metadata address 169.254.169.254), and those sockets keep node
    # alive after SIGTERM.
    local -a args=(--blobHost 127.0.0.1 --skipApiVersionCheck --loose --silent
        --disableTelemetry)
    local -a launcher=()

    mkdir -p "$statedir"
    [[ -x $AZURITE_BIN ]] || { _log "azurite not installed; run azurite_install"; return 1; }

    # --inMemoryPersistence and --location are mutually exclusive.
    local in_memory=1
    for arg in "$@"; do
        case "$arg" in
            --location | --location=* | -l) in_memory=0 ;;
        esac
    done
    if ((in_memory)); then
        args+=(--inMemoryPersistence)
    fi

    port="$(_free_port)"
    args+=(--blobPort "$port")
    if [[ ${AZURITE_DETACH:-0} == 1 ]]; then
        launcher=(setsid)
    fi

    rm -f "$pidfile"
    # The wrapper shell records its own pid, then execs Azurite (same pid), so
    # the pid file is right even if setsid has to fork.
    # shellcheck disable=SC2016 # expanded by the inner shell, on purpose
    "${launcher[@]}" bash -c 'echo "$$" >"$1"; shift; exec "$@"' _ \
        "$pidfile" "$AZURITE_BIN" "${args[@]}" "$@" \
        </dev/null >"$log" 2>&1 &
    printf '%s\n' "$port" >"$statedir/azurite.port"

    # Wait for the pid file (written right before exec).
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidfile ]] && break
        sleep 0.1
    done
    pid="$(<"$pidfile")" || { _log "azurite did not start"; return 1; }

    # Wait up to 30 s for any HTTP answer on the blob endpoint.
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            _log "azurite exited early; log tail:"
            tail -n 30 "$log" >&2 || true
            rm -f "$pidfile"
            return 1
        fi
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:$port/devstoreaccount1?comp=list" || true)"
        if [[ -n $code && $code != 000 ]]; then
            export AZURITE_BLOB_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
            _log "azurite pid $pid listening on $AZURITE_BLOB_ENDPOINT"
            return 0
        fi
        sleep 0.2
    done
    _log "azurite not answering on port $port after 30 s; log tail:"
    tail -n 30 "$log" >&2 || true
    azurite_stop "$statedir"
    return 1
}

# azurite_stop <statedir>: TERM, wait up to 5 s, then KILL. Idempotent.
azurite_stop() {
    local statedir="${1:?usage: azurite_stop <statedir>}"
    local pidfile="$statedir/azurite.pid" pid i
    if azurite_alive "$statedir"; then
        pid="$(<"$pidfile")"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            _log "azurite pid $pid ignored SIGTERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# Make FUSE usable: fusermount3 installed, /dev/fuse present, module loaded.
ensure_fuse() {
    if ! command -v fusermount3 >/dev/null 2>&1; then
        _log "installing fuse3"
        _as_root apt-get update -qq
        _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
    fi
    # Harmless if built in, already loaded, or not permitted (containers).
    if command -v modprobe >/dev/null 2>&1; then
        _as_root modprobe fuse >/dev/null 2>&1 || true
    fi
    if [[ ! -e /dev/fuse ]]; then
        _log "creating /dev/fuse"
        if _as_root mknod /dev/fuse c 10 229; then
            _as_root chmod 666 /dev/fuse || true
        fi
    fi
    [[ -c /dev/fuse ]] || { _log "/dev/fuse is unavailable; FUSE mounts will fail"; return 1; }
}
