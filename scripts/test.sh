#!/usr/bin/env bash
# Install what the tests need, then run fmt, clippy and the whole test suite
# against a throwaway in-memory Azurite. Exits non-zero on any failure.
#
# Usage: scripts/test.sh [args passed to the test binaries after `--`]
#   e.g. scripts/test.sh names::
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/azurite.sh
. scripts/lib/azurite.sh

banner() { printf '\n==> %s\n' "$*"; }

banner "setup: fuse3, azurite, rustfmt/clippy"
ensure_fuse
azurite_install
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

statedir="$(mktemp -d)"
cleanup() {
    azurite_stop "$statedir" || true
    rm -rf "$statedir"
}
trap cleanup EXIT
# Turn Ctrl-C / TERM into a normal exit so the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

banner "cargo fmt --all -- --check"
cargo fmt --all -- --check

banner "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

banner "start azurite"
azurite_start "$statedir"
export BLOBMOUNT_TEST_BLOB_ENDPOINT="$AZURITE_BLOB_ENDPOINT"

banner "cargo test --all-targets -- --test-threads=4 $*"
cargo test --all-targets -- --test-threads=4 "$@"

banner "all checks passed"
