#!/usr/bin/env bash
# Build images/variants/apfs-gpt.E01: a GPT disk whose one partition (type "Apple APFS") holds an
# APFS container with one volume, formatted by mkapfs from Debian's apfsprogs.
#
# What it shows: dfvfs/libfsapfs open a real APFS container inside a GPT volume system and walk its
# volume. What it cannot show: no tool on this machine writes files into APFS (apfsprogs has only
# mkapfs and apfsck, the linux-apfs-rw driver is not packaged and this kernel has no APFS), so the
# volume is empty and no mail artifact on APFS is collected from it; FileVault (encrypted APFS)
# cannot be made either.
#
# Needs no root and mounts nothing:
#   apt-get update && apt-get install -y apfsprogs fdisk ewf-tools faketime
# Reproducible: fixed container and volume UUIDs, the format time and the E01 acquisition date are
# pinned with libfaketime, and the disk converts back to the same raw bytes (checked).
#
# Usage: bash images/build_apfs_variant.sh [OUTPUT_DIR]   (default: images/variants)
set -euo pipefail
export LC_ALL=C TZ=UTC
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "${1:-$HERE/variants}"
OUT="$(cd "${1:-$HERE/variants}" && pwd)"
export PATH="$PATH:/sbin:/usr/sbin"
for t in mkapfs apfsck sfdisk ewfacquire ewfexport; do
    command -v "$t" >/dev/null || { echo "build_apfs_variant: $t not found" >&2; exit 1; }
done
FAKELIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
    [[ -f "$f" ]] && { FAKELIB=$f; break; }
done
[[ -n "$FAKELIB" ]] || { echo "build_apfs_variant: libfaketime not found" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

START=2048                  # first partition sector (1 MiB)
SECTORS=$((128 * 2048))     # 128 MiB, the smallest container mkapfs accepts is a little under
DISK="$WORK/apfs-gpt.raw"
truncate -s $(( (START + SECTORS + 2048) * 512 )) "$DISK"
sfdisk --quiet --no-reread --no-tell-kernel "$DISK" <<EOF
label: gpt
label-id: 6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9
unit: sectors

start=$START, size=$SECTORS, type=7C3457EF-0000-11AA-AA11-00306543ECAC, uuid=0D1E2F30-4152-4364-8576-879809A1B2C3, name="Macintosh HD"
EOF

truncate -s $(( SECTORS * 512 )) "$WORK/container.img"
env LD_PRELOAD="$FAKELIB" FAKETIME="2026-10-21 07:30:00" \
    mkapfs -L "Macintosh HD" -U 8F1C2A44-7B3E-4D21-9C5A-3E7F1B2D4C6E \
           -u 2B7D9E11-5A4C-4F38-8E21-6C0B3A9F7D15 "$WORK/container.img" >/dev/null
apfsck "$WORK/container.img" >/dev/null
dd if="$WORK/container.img" of="$DISK" bs=512 seek="$START" conv=notrunc status=none

rm -f "$OUT"/apfs-gpt.E0*
env LD_PRELOAD="$FAKELIB" FAKETIME="2026-10-21 08:00:00" \
    ewfacquire -u -q -t "$OUT/apfs-gpt" -f encase6 -c deflate:best -S 1.4GiB -b 64 -B 0 \
    -C "IT-2026-044" -D "GPT disk, one APFS container (mkapfs), empty volume" \
    -e "inboxtrail reference build" -E "apfs-gpt" -N "test image, not evidence" \
    -m fixed -M physical -l "$WORK/ewf.log" "$DISK" >/dev/null 2>&1 \
    || { cat "$WORK/ewf.log" >&2; exit 1; }
ewfexport -q -u -f raw -t "$WORK/back" "$OUT/apfs-gpt.E01" >/dev/null 2>&1
cmp -s "$WORK/back.raw" "$DISK" || { echo "apfs-gpt.E01 does not export back" >&2; exit 1; }
echo "apfs-gpt.E01: $(stat -c %s "$OUT/apfs-gpt.E01") bytes, raw sha256 $(sha256sum < "$DISK" | cut -c1-64)"
