#!/usr/bin/env bash
# Build images/windows-suspect.raw (MBR, one NTFS partition at sector 2048) and
# images/windows-suspect-gpt.raw (the same NTFS bytes in a GPT disk), their .sha256 files and
# windows-suspect.scenario.json (ground truth read back with The Sleuth Kit).
#
# The file system is made with mkntfs and populated through an ntfs-3g FUSE mount whose clock
# is frozen by libfaketime and moved by the script for every operation (create, write, delete,
# rename), so MFT change times follow the story.  Needs root (FUSE mount) and:
#   ntfs-3g (mkntfs, ntfs-3g), faketime (libfaketime), fdisk (sfdisk), gdisk (sgdisk),
#   sleuthkit (fls, istat, icat, mmls), python3 >= 3.11 (the EVTX fixture uses datetime.UTC).
#   apt-get install -y ntfs-3g faketime fdisk gdisk sleuthkit
#
# Usage: bash images/build_windows_suspect.sh [OUTPUT_DIR]   (default: images/)
set -euo pipefail
export LC_ALL=C TZ=UTC PYTHONDONTWRITEBYTECODE=1
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(cd "${1:-$HERE}" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
GEN="$HERE/windows_suspect.py"

PART_START=2048
PART_SECTORS=6144                 # 3 MiB NTFS
DISK_SECTORS=$(( PART_START + PART_SECTORS + 40 ))   # 40 spare sectors: room for the GPT backup
DISK_ID=0x57494e44                # "WIND"
GPT_DISK_GUID=57494e44-2d44-4156-4531-000000000001
GPT_PART_GUID=57494e44-2d44-4156-4531-000000000002
INSTALL="2026-09-01 08:00:00"
FAKELIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1 \
         /usr/lib/faketime/libfaketime.so.1; do [[ -f "$f" ]] && { FAKELIB=$f; break; }; done

die() { echo "build_windows_suspect: $*" >&2; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"
for t in mkntfs ntfs-3g sfdisk sgdisk fls istat icat mmls dd sha256sum "$PY"; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"
done
[[ -n "$FAKELIB" ]] || die "libfaketime not found (apt-get install -y faketime)"
[[ $(id -u) == 0 ]] || die "needs root for the ntfs-3g FUSE mount"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/windows-suspect.XXXXXX")"
MNT="$WORK/mnt"; mkdir "$MNT"
CLOCK="$WORK/clock"
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    rm -rf "$WORK"
}
trap cleanup EXIT
FS="$WORK/fs.ntfs"

echo "== mkntfs (clock frozen at $INSTALL UTC)"
truncate -s $(( PART_SECTORS * 512 )) "$FS"
echo "$INSTALL" > "$CLOCK"
LD_PRELOAD="$FAKELIB" FAKETIME_TIMESTAMP_FILE="$CLOCK" FAKETIME_NO_CACHE=1 \
    mkntfs -F -q -Q -s 512 -c 4096 -p "$PART_START" -H 255 -S 63 -L Windows "$FS" >/dev/null

echo "== ntfs-3g mount under libfaketime, populate"
LD_PRELOAD="$FAKELIB" FAKETIME_TIMESTAMP_FILE="$CLOCK" FAKETIME_NO_CACHE=1 \
    ntfs-3g -o no_def_opts,noatime "$FS" "$MNT"
"$PY" "$GEN" populate "$MNT" "$CLOCK" "$WORK" "$FS"
sync
umount "$MNT"
sleep 1
pgrep -f "ntfs-3g -o no_def_opts,noatime $FS" >/dev/null && die "ntfs-3g still running"

echo "== disks: MBR (sfdisk) and GPT (sgdisk), partition at sector $PART_START"
MBR="$WORK/windows-suspect.raw"; GPT="$WORK/windows-suspect-gpt.raw"
truncate -s $(( DISK_SECTORS * 512 )) "$MBR" "$GPT"
sfdisk --quiet --no-reread --no-tell-kernel "$MBR" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$PART_START, size=$PART_SECTORS, type=7, bootable
EOF
sgdisk -o -n "1:$PART_START:$(( PART_START + PART_SECTORS - 1 ))" -t 1:0700 \
    -c "1:Basic data partition" -u "1:$GPT_PART_GUID" -U "$GPT_DISK_GUID" "$GPT" >/dev/null 2>&1 \
    || die "sgdisk failed"
for d in "$MBR" "$GPT"; do dd if="$FS" of="$d" bs=512 seek="$PART_START" conv=notrunc status=none; done

echo "== read back (fls/istat/icat), ground truth"
"$PY" "$GEN" finalize "$WORK" "$MBR" "$PART_START" "$WORK/scenario.json"
mmls "$MBR" | grep -Eq "^[0-9]+: +000:000 +0*$PART_START " || die "mmls: MBR partition not at $PART_START"
mmls "$GPT" | grep -Eq "^[0-9]+: +[0-9]+ +0*$PART_START .*Basic data" || die "mmls: GPT partition not at $PART_START"
cmp <(fls -r -p -o "$PART_START" "$MBR") <(fls -r -p -o "$PART_START" "$GPT") || die "MBR and GPT listings differ"

mv -f "$MBR" "$GPT" "$OUT/"
mv -f "$WORK/scenario.json" "$OUT/windows-suspect.scenario.json"
(cd "$OUT" && for f in windows-suspect.raw windows-suspect-gpt.raw; do sha256sum "$f" > "$f.sha256"; done)
echo "== done"
cat "$OUT/windows-suspect.raw.sha256" "$OUT/windows-suspect-gpt.raw.sha256"
