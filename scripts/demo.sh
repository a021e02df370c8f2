#!/usr/bin/env bash
# Local demo: a disk-backed Azurite, a seeded `demo` container, and blobmount
# mounting it read-only.
#
# Usage: scripts/demo.sh          start (or restart) the demo
#        scripts/demo.sh stop     unmount, stop Azurite, remove .demo/
# Env:   BLOBMOUNT_DEMO_MOUNTPOINT  mountpoint (default /mnt/data)
set -euo pipefail

# shellcheck source=scripts/lib/azurite.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/azurite.sh"
# Resolve the mountpoint before leaving the caller's directory.
MP="$(realpath -ms "${BLOBMOUNT_DEMO_MOUNTPOINT:-/mnt/data}")"
cd "$ROOT"

DEMO="$ROOT/.demo"
BIN="$ROOT/target/release/blobmount"
SEED="$ROOT/target/release/examples/seed"

log() { printf '[demo] %s\n' "$*" >&2; }

# True if something is mounted exactly at $1 (reads the mount table only, so
# a dead FUSE mount whose stat fails with ENOTCONN still counts).
is_mounted() { findmnt -rn --mountpoint "$1" >/dev/null 2>&1; }

# Unmount $1 if mounted: blobmount first, then fusermount3, then lazy umount.
unmount_mp() {
    local mp="$1"
    is_mounted "$mp" || return 0
    log "unmounting $mp"
    if [[ -x $BIN ]]; then
        "$BIN" unmount "$mp" || true
    fi
    if is_mounted "$mp"; then
        fusermount3 -u "$mp" 2>/dev/null || true
    fi
    if is_mounted "$mp"; then
        umount -l "$mp" || true
    fi
    if is_mounted "$mp"; then
        log "could not unmount $mp"
        return 1
    fi
}

start() {
    local mp="$MP" sas prev i

    ensure_fuse
    azurite_install
    mkdir -p "$DEMO"

    # Reuse the Azurite of a previous run, else start a disk-backed one in its
    # own session so it outlives this script.
    if azurite_alive "$DEMO"; then
        AZURITE_BLOB_ENDPOINT="http://127.0.0.1:$(<"$DEMO/azurite.port")/devstoreaccount1"
        export AZURITE_BLOB_ENDPOINT
        log "reusing azurite at $AZURITE_BLOB_ENDPOINT"
    else
        AZURITE_DETACH=1 azurite_start "$DEMO" --location "$DEMO/azurite-data"
    fi

    log "building blobmount and the seed example (release)"
    cargo build --release --bin blobmount --example seed

    # The seeder prints the read-only SAS query string on its last stdout line.
    # Keep stdout in a private file so the token never lands on the terminal.
    log "seeding container 'demo'"
    (umask 077 && "$SEED" demo "$AZURITE_BLOB_ENDPOINT/demo" >"$DEMO/seed.out")
    head -n -1 "$DEMO/seed.out"
    sas="$(tail -n 1 "$DEMO/seed.out")"
    sas="${sas#\?}"
    if [[ $sas != *sig=* ]]; then
        log "seed did not print a SAS token on its last line"
        return 1
    fi

    # Unmount leftovers: the previous demo's mountpoint and this one.
    if [[ -s $DEMO/mountpoint ]]; then
        prev="$(<"$DEMO/mountpoint")"
        if [[ $prev != "$mp" ]]; then
            unmount_mp "$prev"
        fi
    fi
    unmount_mp "$mp"
    mkdir -p "$mp"

    # The SAS goes through the environment only, never argv.
    log "mounting $AZURITE_BLOB_ENDPOINT/demo at $mp"
    AZURE_STORAGE_SAS_TOKEN="$sas" "$BIN" mount "$AZURITE_BLOB_ENDPOINT/demo" "$mp" \
        --log-file "$DEMO/blobmount.log"
    printf '%s\n' "$mp" >"$DEMO/mountpoint"

    # The daemon may finish mounting just after the command returns.
    for ((i = 0; i < 50; i++)); do
        is_mounted "$mp" && break
        sleep 0.1
    done
    if ! is_mounted "$mp"; then
        log "$mp is not mounted; blobmount log tail:"
        tail -n 30 "$DEMO/blobmount.log" >&2 || true
        return 1
    fi

    cat <<EOM

blobmount demo is up: $AZURITE_BLOB_ENDPOINT/demo -> $mp (read-only)

Try:
  ls -l $mp
  find $mp | head
  sha256sum $mp/large/sample-64MiB.bin
  cat $mp/README.txt
  tail -f .demo/blobmount.log

Stop with:
  scripts/demo.sh stop
EOM
}

stop() {
    local mp
    if [[ ! -d $DEMO ]]; then
        log "no demo running"
        return 0
    fi
    if [[ -s $DEMO/mountpoint ]]; then
        mp="$(<"$DEMO/mountpoint")"
        # Keep .demo (state and logs) if the unmount failed.
        unmount_mp "$mp"
    fi
    azurite_stop "$DEMO"
    rm -rf "$DEMO"
    log "stopped"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 [start|stop]" >&2
        exit 2
        ;;
esac
