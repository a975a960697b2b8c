#!/usr/bin/env bash
# Build images/linux-suspect.raw: an MBR disk with one ext4 partition (start
# sector 2048) holding the "mailhost" scenario, plus linux-suspect.raw.sha256
# and linux-suspect.scenario.json (ground truth).  Nothing is mounted; the file
# system is populated with mke2fs -d and edited with debugfs -w.
#
# Needs: bash, python3 (>= 3.9, stdlib only), e2fsprogs >= 1.47 (mke2fs,
# debugfs), util-linux sfdisk (Debian package "fdisk"), coreutils.
# Optional: sleuthkit (mmls, fls, istat, icat) for the read-back checks.
#
# Usage: bash images/build_linux_suspect.sh [OUTPUT_DIR]   (default: images/)
set -euo pipefail

export LC_ALL=C TZ=UTC PYTHONDONTWRITEBYTECODE=1
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(cd "${1:-$HERE}" && pwd)"
IMAGE="$OUT/linux-suspect.raw"
TRUTH="$OUT/linux-suspect.scenario.json"

DISK_MIB=10                       # whole disk
PART_START=2048                   # sectors
PART_SECTORS=$(( (DISK_MIB - 1) * 2048 ))   # 9 MiB partition, to the end of the disk
FS_UUID=6d61696c-686f-4073-8b75-737065637400
HASH_SEED=0b7e1a52-3c4d-4e5f-8a6b-7c8d9e0f1a2b
DISK_ID=0x6d61696c                # MBR disk identifier ("mail")
LABEL=mailhost-root
PY="${PYTHON:-python3}"
GEN="$HERE/linux_suspect.py"

die() { echo "build_linux_suspect: $*" >&2; exit 1; }
for t in mke2fs debugfs sfdisk dd sha256sum touch "$PY"; do
    command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/sbin:/usr/sbin" command -v "$t" >/dev/null 2>&1 \
        || die "missing tool: $t (apt-get install -y e2fsprogs fdisk python3)"
done
export PATH="$PATH:/sbin:/usr/sbin"
ver=$(mke2fs -V 2>&1 | sed -n 's/^mke2fs \([0-9.]*\).*/\1/p')
[[ "$(printf '%s\n' 1.47 "$ver" | sort -V | head -1)" == 1.47 ]] \
    || die "e2fsprogs >= 1.47 required (found ${ver:-unknown})"

# install time of the host: superblock times, root dir, lost+found, crtimes
FAKE_TIME=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import linux_suspect as s; print(s.epoch(s.INSTALL_TIME))' "$HERE")
export E2FSPROGS_FAKE_TIME=$FAKE_TIME

WORK="$(mktemp -d "${TMPDIR:-/tmp}/linux-suspect.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"
FS="$WORK/fs.ext4"
DISK="$WORK/disk.raw"

echo "== staging tree"
"$PY" "$GEN" stage "$STAGE" "$WORK"

# modes and fixed atime/mtime on every staged object (children before their
# directories is irrelevant: touch does not change a directory's mtime)
while IFS=$'\t' read -r kind path mode uid gid atime mtime ctime; do
    p="$STAGE${path%/}"; [[ "$path" == / ]] && p="$STAGE"
    if [[ "$kind" != l ]]; then chmod "$mode" "$p"; fi
    touch -h -m -d "@$mtime" "$p"
    touch -h -a -d "@$atime" "$p"
done < "$WORK/manifest.tsv"

echo "== mke2fs -d (E2FSPROGS_FAKE_TIME=$FAKE_TIME)"
truncate -s $(( PART_SECTORS * 512 )) "$FS"
mke2fs -q -F -t ext4 -b 4096 -I 256 -m 5 \
    -U "$FS_UUID" -E "hash_seed=$HASH_SEED,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0" \
    -L "$LABEL" -M / -d "$STAGE" "$FS"

echo "== debugfs: owners, ctimes"
debugfs -w -f "$WORK/debugfs-meta.cmd" "$FS" >"$WORK/debugfs-meta.log" 2>&1
if grep -v '^debugfs' "$WORK/debugfs-meta.log" | grep -q .; then
    cat "$WORK/debugfs-meta.log" >&2; die "debugfs metadata commands reported errors"
fi

DEL_PATH=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$WORK/delete.json")
DEL_TIME=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dtime"])' "$WORK/delete.json")
DEL_DIR=$(dirname "$DEL_PATH")
DEL_INO=$(debugfs -R "stat $DEL_PATH" "$FS" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
[[ -n "$DEL_INO" ]] || die "cannot find inode of $DEL_PATH"

echo "== debugfs: rm $DEL_PATH (inode $DEL_INO) at @$DEL_TIME"
# debugfs rm = unlink (the entry is merged into the previous entry's rec_len,
# so the name stays in the directory block) + kill_file (dtime set, inode and
# blocks marked free in the bitmaps; the extent tree and data are not zeroed)
E2FSPROGS_FAKE_TIME=$DEL_TIME debugfs -w -R "rm $DEL_PATH" "$FS" >/dev/null 2>&1
# set the times explicitly (dtime/ctime of the freed inode; the directory's
# mtime/ctime as the kernel would have left them).  debugfs 1.47 date/time
# fields take "@<epoch>" or YYYYMMDD[HHMM[SS]]; a bare number is NOT an epoch.
cat >"$WORK/debugfs-del.cmd" <<EOF
sif <$DEL_INO> dtime @$DEL_TIME
sif <$DEL_INO> ctime @$DEL_TIME
sif <$DEL_INO> ctime_extra 0
sif $DEL_DIR mtime @$DEL_TIME
sif $DEL_DIR ctime @$DEL_TIME
EOF
debugfs -w -f "$WORK/debugfs-del.cmd" "$FS" >"$WORK/debugfs-del.log" 2>&1
if grep -v '^debugfs' "$WORK/debugfs-del.log" | grep -q .; then
    cat "$WORK/debugfs-del.log" >&2; die "debugfs deletion commands reported errors"
fi

# superblock: last mount (reboot on 3 Oct) and last write (clean shutdown for
# imaging); the closing flush stamps s_wtime with E2FSPROGS_FAKE_TIME
SB_MTIME=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["sb_mtime"])' "$WORK/delete.json")
SB_WTIME=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["sb_wtime"])' "$WORK/delete.json")
printf 'ssv mtime @%s\nssv mnt_count 1\nssv wtime @%s\n' "$SB_MTIME" "$SB_WTIME" >"$WORK/debugfs-sb.cmd"
E2FSPROGS_FAKE_TIME=$SB_WTIME debugfs -w -f "$WORK/debugfs-sb.cmd" "$FS" >"$WORK/debugfs-sb.log" 2>&1
if grep -v '^debugfs' "$WORK/debugfs-sb.log" | grep -q .; then
    cat "$WORK/debugfs-sb.log" >&2; die "debugfs superblock commands reported errors"
fi
e2fsck -fn "$FS" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; die "e2fsck -fn found problems"; }

echo "== disk: MBR (sfdisk), partition at sector $PART_START, dd conv=notrunc"
truncate -s $(( DISK_MIB * 1024 * 1024 )) "$DISK"
sfdisk --quiet --no-reread --no-tell-kernel "$DISK" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$PART_START, size=$PART_SECTORS, type=83, bootable
EOF
dd if="$FS" of="$DISK" bs=512 seek="$PART_START" conv=notrunc status=none

echo "== read back, verify, write ground truth"
"$PY" "$GEN" finalize "$WORK" "$FS" "$DISK" "$WORK/scenario.json"

if command -v mmls >/dev/null && command -v fls >/dev/null && command -v icat >/dev/null; then
    mmls "$DISK" | grep -Eq "^[0-9]+: +000:000 +0*$PART_START " \
        || { mmls "$DISK" >&2; die "mmls: partition not at sector $PART_START"; }
    fls -o "$PART_START" -r -d -p "$DISK" | grep -Eq "^r/r \* $DEL_INO:	${DEL_PATH#/}\$" \
        || die "fls -d: deleted $DEL_PATH <$DEL_INO> not listed"
    want=$("$PY" -c 'import json,sys; print([d["sha256"] for d in json.load(open(sys.argv[1]))["deleted_files"]][0])' "$WORK/scenario.json")
    got=$(icat -o "$PART_START" "$DISK" "$DEL_INO" | sha256sum | cut -d' ' -f1)
    [[ "$got" == "$want" ]] || die "icat <$DEL_INO> sha256 $got != $want"
    echo "TSK: mmls/fls -d/icat OK (deleted $DEL_PATH = inode $DEL_INO, sha256 $got)"
else
    echo "sleuthkit not installed: skipped mmls/fls/icat checks" >&2
fi

mv -f "$DISK" "$IMAGE"
mv -f "$WORK/scenario.json" "$TRUTH"
(cd "$OUT" && sha256sum "$(basename "$IMAGE")" > "$(basename "$IMAGE").sha256")
echo "== done"
cat "$IMAGE.sha256"
ls -l "$IMAGE"
if [[ -f "$HERE/README.md" ]] && ! grep -q "$(cut -d' ' -f1 "$IMAGE.sha256")" "$HERE/README.md"; then
    echo "note: images/README.md does not mention this sha256 (update it)" >&2
fi
