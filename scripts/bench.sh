#!/usr/bin/env bash
# Throughput, CPU and memory of blobmount, each next to its ceiling measured in the same run:
#   server ceiling: parallel ranged GETs through blobmount's own client (examples/getbench.rs);
#   FUSE ceiling:   bindfs -r over a tmpfs copy of the same bytes.
# Every figure is the best of RUNS runs (this machine is noisy), ceilings included.
#
# Usage: scripts/bench.sh [--runs N] [--disk]   (--disk: disk-backed Azurite instead of in-memory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/azurite.sh
. scripts/lib/azurite.sh

RUNS=3
DISK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --disk) DISK=1; shift ;;
        *) echo "usage: scripts/bench.sh [--runs N] [--disk]" >&2; exit 2 ;;
    esac
done

BIN="$ROOT/target/release/blobmount"
SEED="$ROOT/target/release/examples/seed"
GETBENCH="$ROOT/target/release/examples/getbench"
MIB=$((1 << 20))

ensure_fuse
azurite_install
for tool in fio bindfs; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq fio bindfs >/dev/null; }
done
cargo build --release --bin blobmount --example seed --example getbench 2>&1 | tail -1

state="$(mktemp -d)"
MNT="$state/mnt"
mkdir -p "$MNT" "$state/tmpfs" "$state/bind"
cleanup() {
    for m in "$MNT" "$state/bind" "$state/tmpfs" "$state/rclone"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" 2>/dev/null || true; fi
    done
    azurite_stop "$state" || true
    rm -rf "$state"
}
trap cleanup EXIT

if [[ $DISK == 1 ]]; then
    azurite_start "$state" --location "$state/azurite-data" >/dev/null
else
    azurite_start "$state" >/dev/null
fi
URL="$AZURITE_BLOB_ENDPOINT/bench"
echo "seeding (1 GiB + 4 x 256 MiB + 2,000 small files + 20,000 names)..."
"$SEED" bench "$URL" >"$state/seed.out"
AZURE_STORAGE_SAS_TOKEN="$(tail -n 1 "$state/seed.out")"
export AZURE_STORAGE_SAS_TOKEN

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
# mbps BYTES START END
mbps() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { printf "%.0f\n", b / (e - s) / 1e6 }'; }
max() { sort -n | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

daemon_pid() { pgrep -f -n -- "blobmount mount $URL $MNT" || true; }
# mount_bm CACHE_MEM_MIB [flags...]
mount_bm() {
    CACHE_MIB="$1"
    shift
    : >"$state/blobmount.log"
    "$BIN" mount "$URL" "$MNT" --log-file "$state/blobmount.log" --cache-mem "${CACHE_MIB}M" "$@"
    PID="$(daemon_pid)"
}
unmount_bm() {
    "$BIN" unmount "$MNT"
    while [[ -n $(daemon_pid) ]]; do sleep 0.05; done
}
# "BYTES GETS" fetched during the last mount (logged by the daemon when it stops).
fetched() { sed -n 's/.*content fetched: \([0-9]*\) bytes in \([0-9]*\) GETs.*/\1 \2/p' "$state/blobmount.log" | tail -n 1; }
# CPU seconds (utime + stime) of PID.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
rchar() { awk '/^rchar/ { print $2 }' "/proc/$1/io"; }
# read_mbps FILE...: reads the files in parallel, prints MB/s
read_mbps() {
    local s e bytes=0 f pids=()
    for f in "$@"; do bytes=$((bytes + $(stat -c %s "$f"))); done
    s=$(now)
    for f in "$@"; do
        dd if="$f" of=/dev/null bs=1M status=none &
        pids+=($!)
    done
    wait "${pids[@]}" # only these: Azurite is a child too
    e=$(now)
    mbps "$bytes" "$s" "$e"
}
row() { printf '%-46s %10s %10s %7s\n' "$@"; }

# Largest peak RSS above the mount's --cache-mem, over every mount of the run.
RSS_OVER=-999999 RSS_AT=""
note_rss() {
    local r over
    r=$(hwm_mib "$PID")
    over=$((r - CACHE_MIB))
    if ((over > RSS_OVER)); then RSS_OVER=$over RSS_AT="${r} MiB with --cache-mem ${CACHE_MIB}M"; fi
    return 0
}

echo
echo "== ceilings (best of $RUNS) =="
server=$(for c in 4 8 16; do for _ in $(seq "$RUNS"); do
    "$GETBENCH" "$URL" big/1GiB.bin "$c" $((8 * MIB)) | awk '{ print int($1) }'
done; done | max)
row "server ceiling: direct 8 MiB GETs, 1 GiB" "$server MB/s"
mount -t tmpfs -o size=1200m tmpfs "$state/tmpfs"
mount_bm 512
cp "$MNT/big/1GiB.bin" "$state/tmpfs/1GiB.bin"
unmount_bm
bindfs -r "$state/tmpfs" "$state/bind"
fuse=$(for _ in $(seq "$RUNS"); do drop_caches; read_mbps "$state/bind/1GiB.bin"; done | max)
row "FUSE ceiling: bindfs -r over tmpfs, 1 GiB" "$fuse MB/s"
umount "$state/bind"

echo
echo "== blobmount (best of $RUNS; --cache-mem 512M unless said) =="
row "what" "MB/s" "x ceiling" "extra"
cold=0 cpu_best=999
for _ in $(seq "$RUNS"); do
    mount_bm 512
    drop_caches
    c0=$(cpu_s "$PID")
    r=$(read_mbps "$MNT/big/1GiB.bin")
    c1=$(cpu_s "$PID")
    note_rss
    unmount_bm
    cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    ((r > cold)) && cold=$r
    awk -v c="$cpu" -v b="$cpu_best" 'BEGIN { exit !(c < b) }' && cpu_best=$cpu
done
row "cold sequential read, 1 GiB" "$cold" "$(ratio "$cold" "$server")" "cpu ${cpu_best}s/GiB"

# Warm: the block cache holds the whole blob; the kernel's page cache is dropped each time.
mount_bm 1536
read_mbps "$MNT/big/1GiB.bin" >/dev/null
warm=$(for _ in $(seq "$RUNS"); do drop_caches; read_mbps "$MNT/big/1GiB.bin"; done | max)
note_rss
unmount_bm
row "warm re-read from block cache (1536M), 1 GiB" "$warm" "$(ratio "$warm" "$fuse")" "(of FUSE)"

par=0
for _ in $(seq "$RUNS"); do
    mount_bm 512
    drop_caches
    r=$(read_mbps "$MNT"/par/p{0,1,2,3}.bin)
    note_rss
    unmount_bm
    ((r > par)) && par=$r
done
row "4 parallel sequential readers, 4 x 256 MiB" "$par" "$(ratio "$par" "$server")"

# Random reads: a fixed number of reads from a cold cache; what was fetched per read comes
# from the daemon's own count.
fio_rand() {
    local bs="$1" ios="$2" out bw bytes gets
    mount_bm 512
    drop_caches
    out=$(fio --name=rand --filename="$MNT/big/1GiB.bin" --readonly --rw=randread --bs="$bs" \
        --ioengine=psync --number_ios="$ios" --invalidate=1 --output-format=terse \
        --terse-version=3 2>/dev/null)
    note_rss
    unmount_bm
    bw=$(echo "$out" | awk -F';' '{ printf "%.1f", $7 * 1024 / 1e6 }')
    read -r bytes gets < <(fetched)
    echo "$bw $(awk -v b="$bytes" -v n="$ios" 'BEGIN { printf "%.0f", b / n / 1024 }') $(awk -v g="$gets" -v n="$ios" 'BEGIN { printf "%.2f", g / n }')"
}
rand_1m=0
for spec in 4k:2000 1m:300; do
    bs=${spec%%:*} ios=${spec##*:}
    best=0 kib=0 gpr=0
    for _ in $(seq "$RUNS"); do
        read -r bw k g < <(fio_rand "$bs" "$ios")
        if awk -v x="$bw" -v y="$best" 'BEGIN { exit !(x > y) }'; then best=$bw kib=$k gpr=$g; fi
    done
    [[ $bs == 1m ]] && rand_1m=$best
    row "fio random reads, bs=$bs, $ios reads" "$best" "" "${kib} KiB, ${gpr} GETs fetched per read"
done
direct_1m=$(for _ in $(seq "$RUNS"); do
    "$GETBENCH" "$URL" big/1GiB.bin 1 $MIB | awk '{ print int($1) }'
done | max)
row "direct 1 MiB GETs, one at a time" "$direct_1m"
row "random 1 MiB reads vs direct 1 MiB GETs" "" "$(ratio "${rand_1m%.*}" "$direct_1m")"

small_list=$(seq -f 'small/s%04g.bin' 0 1999 | paste -sd,)
direct_small=$(for _ in $(seq "$RUNS"); do
    "$GETBENCH" "$URL" "$small_list" 16 $MIB | awk '{ print int($1) }'
done | max)
row "direct GETs of 2,000 x 128 KiB, 16 at a time" "$direct_small"
for readers in 1 16; do
    best=0
    for _ in $(seq "$RUNS"); do
        mount_bm 512 --metadata-ttl indefinite
        drop_caches
        s=$(now)
        find "$MNT/small" -type f -print0 | xargs -0 -P "$readers" -n 50 cat >/dev/null
        e=$(now)
        note_rss
        unmount_bm
        r=$(mbps $((2000 * 128 * 1024)) "$s" "$e")
        ((r > best)) && best=$r
    done
    row "small files (ttl indefinite), $readers reader(s)" "$best" "$(ratio "$best" "$direct_small")"
done

ls_best=999 ttfb_best=999
for _ in $(seq "$RUNS"); do
    mount_bm 512
    s=$(now); n=$(ls -l "$MNT/wide" | wc -l); e=$(now)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')
    awk -v t="$t" -v b="$ls_best" 'BEGIN { exit !(t < b) }' && ls_best=$t
    s=$(now); head -c 1 "$MNT/big/1GiB.bin" >/dev/null; e=$(now)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
    awk -v t="$t" -v b="$ttfb_best" 'BEGIN { exit !(t < b) }' && ttfb_best=$t
    note_rss
    unmount_bm
done
row "ls -l of 20,000 entries ($((n - 1)) listed)" "${ls_best}s"
row "time to first byte (fresh mount, 1 GiB blob)" "${ttfb_best}s"
row "peak RSS above --cache-mem, all runs" "${RSS_OVER} MiB" "" "($RSS_AT)"

if command -v rclone >/dev/null; then
    echo
    echo "== rclone mount, same workload (best of $RUNS) =="
    conf="$state/rclone.conf"
    printf '[az]\ntype = azureblob\nsas_url = %s?%s\n' "$URL" "$AZURE_STORAGE_SAS_TOKEN" >"$conf"
    chmod 600 "$conf"
    mkdir -p "$state/rclone"
    rbest=0
    for _ in $(seq "$RUNS"); do
        rclone --config "$conf" mount az: "$state/rclone" --read-only --daemon
        for _ in $(seq 100); do [[ -f $state/rclone/big/1GiB.bin ]] && break; sleep 0.1; done
        if [[ -f $state/rclone/big/1GiB.bin ]]; then
            drop_caches
            r=$(read_mbps "$state/rclone/big/1GiB.bin")
            ((r > rbest)) && rbest=$r
        fi
        fusermount3 -u "$state/rclone" || umount -l "$state/rclone" || true
    done
    if ((rbest > 0)); then
        row "rclone cold sequential read, 1 GiB" "$rbest" "$(ratio "$rbest" "$server")"
    else
        echo "rclone mount did not show the blob (skipped)"
    fi
fi
