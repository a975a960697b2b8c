#!/usr/bin/env bash
# Build images/hostile.qcow2: a booby-trapped ext4 file system (no partition table) whose names
# and files are what an adversary can leave where the collector looks (issue 9), plus
# hostile.qcow2.sha256.  images/hostile.py is the single table of what goes in.  Nothing is
# mounted: mke2fs -d copies a staging tree (Python creates names with any byte but NUL and "/"),
# debugfs -w adds what a staging tree cannot hold cheaply or at all.
#
# Needs: bash, python3 (stdlib only), e2fsprogs >= 1.47 (mke2fs, debugfs, e2fsck, dumpe2fs),
# qemu-img (Debian package qemu-utils), coreutils; fakeroot when not run as root (the staged
# files are chown'ed to the scenario's users).
# Takes about 4 minutes: adding 98,000 names to one directory with debugfs is the slow part.
#
# Usage: bash images/build_hostile.sh [OUTPUT_DIR]   (default: images/)
set -euo pipefail

export LC_ALL=C TZ=UTC PYTHONDONTWRITEBYTECODE=1
umask 022
export PATH="$PATH:/sbin:/usr/sbin"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(cd "${1:-$HERE}" && pwd)"
IMAGE="$OUT/hostile.qcow2"
PY="${PYTHON:-python3}"
GEN="$HERE/hostile.py"
FS_MIB=48
INODES=100400

die() { echo "build_hostile: $*" >&2; exit 1; }
for t in mke2fs debugfs e2fsck dumpe2fs qemu-img sha256sum "$PY"; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (apt-get install -y e2fsprogs qemu-utils python3)"
done
ver=$(mke2fs -V 2>&1 | sed -n 's/^mke2fs \([0-9.]*\).*/\1/p')
[[ "$(printf '%s\n' 1.47 "$ver" | sort -V | head -1)" == 1.47 ]] \
    || die "e2fsprogs >= 1.47 required (found ${ver:-unknown})"
if [[ "$(id -u)" != 0 && -z "${FAKEROOTKEY:-}" ]]; then
    command -v fakeroot >/dev/null || die "run as root or install fakeroot (staged files are chown'ed)"
    exec fakeroot -- bash "${BASH_SOURCE[0]}" "$@"
fi

val() {  # a constant of hostile.py (bytes decoded)
    "$PY" -c 'import os, sys; sys.path.insert(0, sys.argv[1]); import hostile
v = getattr(hostile, sys.argv[2]); print(os.fsdecode(v) if isinstance(v, bytes) else v)' "$HERE" "$1"
}
FS_CREATED=$(val FS_CREATED)
FILE_TIME=$(val FILE_TIME)
FILE_ATIME=$(val FILE_ATIME)
HUGE_SIZE=$(val HUGE_SIZE)
LABEL=$(val LABEL)
FS_UUID=$(val FS_UUID)
HASH_SEED=$(val HASH_SEED)
export E2FSPROGS_FAKE_TIME=$FS_CREATED

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hostile.XXXXXX")"
[[ -n "${KEEP_WORK:-}" ]] || trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"
FS="$WORK/fs.ext4"

quiet_debugfs() {  # debugfs -w -f CMDFILE FS; any output but the echoed commands is an error
    local log="$WORK/$(basename "$1").log"
    debugfs -w -f "$1" "$FS" >"$log" 2>&1
    if grep -v -e '^debugfs' -e '^Allocated inode:' "$log" | grep -q .; then
        grep -v -e '^debugfs' -e '^Allocated inode:' "$log" | head -20 >&2
        die "debugfs $(basename "$1") reported errors"
    fi
}

echo "== staging tree"
"$PY" "$GEN" stage "$STAGE" "$WORK"

# no journal (the image is about names, not recovery) and no metadata_csum (so the build can
# patch one directory entry's file type byte without recomputing a checksum)
echo "== mke2fs -d"
truncate -s $(( FS_MIB * 1024 * 1024 )) "$FS"
mke2fs -q -F -t ext4 -b 4096 -I 256 -N "$INODES" -m 0 -O ^has_journal,^metadata_csum \
    -U "$FS_UUID" -E "hash_seed=$HASH_SEED,lazy_itable_init=0,root_owner=0:0" \
    -L "$LABEL" -M / -d "$STAGE" "$FS"
staged=$(dumpe2fs -h "$FS" 2>/dev/null | awk -F: '/^Inode count/ {n=$2} /^Free inodes/ {f=$2} END {print n-f}')

echo "== e2fsck -D: index the directories (debugfs then links into an htree, not a linear scan)"
rc=0; E2FSCK_TIME=$FS_CREATED e2fsck -fyD "$FS" >"$WORK/fsck-D.log" 2>&1 || rc=$?
(( rc <= 1 )) || { cat "$WORK/fsck-D.log" >&2; die "e2fsck -fyD failed ($rc)"; }

echo "== debugfs: the other $(( $(grep -c '^write' "$WORK/mail-files.cmd") )) files of ~eve/Mail"
quiet_debugfs "$WORK/mail-files.cmd"

echo "== debugfs: device node, 1 TiB claim, fixed ctimes"
{
    echo "cd /var/mail"
    echo "mknod sda b 8 0"
    echo "cd /"
    echo "sif /var/mail/huge size $HUGE_SIZE"
    # mke2fs -d copies the staging files' real ctime: pin every staged inode's ctime
    echo "sif <2> ctime @$FILE_TIME"
    echo "sif <2> ctime_extra 0"
    for (( ino = 12; ino <= staged; ino++ )); do
        echo "sif <$ino> ctime @$FILE_TIME"
        echo "sif <$ino> ctime_extra 0"
    done
    for d in /var/mail /home/eve/Mail; do
        echo "sif $d mtime @$FILE_TIME"
        echo "sif $d atime @$FILE_ATIME"
        echo "sif $d ctime @$FILE_TIME"
    done
    echo "ssv mtime @$FILE_TIME"
    echo "ssv lastcheck @$FS_CREATED"
    echo "ssv mnt_count 0"
} >"$WORK/meta.cmd"
quiet_debugfs "$WORK/meta.cmd"
e2fsck -fn "$FS" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; die "e2fsck -fn found problems"; }

echo "== debugfs: a name holding '/' ($(val SLASH_PATH))"
printf 'cd %s\nmknod %s p\n' "$(val SLASH_DIR)" "$(val SLASH_NAME)" >"$WORK/slash-mknod.cmd"
quiet_debugfs "$WORK/slash-mknod.cmd"
"$PY" "$GEN" slash "$FS" "$WORK/slash.cmd"
quiet_debugfs "$WORK/slash.cmd"
"$PY" "$GEN" slash-filetype "$FS"
# the one problem e2fsck must see now is that name (and only that)
rc=0; e2fsck -fn "$FS" >"$WORK/fsck.log" 2>&1 || rc=$?
if [[ $rc != 4 ]] || [[ "$(grep -c 'has illegal characters in its name' "$WORK/fsck.log")" != 1 ]] \
        || [[ "$(grep -c '^Fix? no$' "$WORK/fsck.log")" != 1 ]] \
        || ! grep -q "^Entry '$(val SLASH_NAME)' in $(val SLASH_DIR) ([0-9]*) has illegal characters in its name" \
            "$WORK/fsck.log"; then
    cat "$WORK/fsck.log" >&2; die "e2fsck -fn: expected exactly the one illegal name"
fi

echo "== read back"
"$PY" "$GEN" check "$FS"

echo "== qemu-img convert -c (compressed qcow2: the raw file system is ${FS_MIB} MiB of mostly zeros)"
# compat=0.10 (qcow2 version 2): libqcow-python 20260703, which dfvfs reads qcow2 with, returns
# wrong bytes for the compressed clusters of a version-3 (compat=1.1, qemu-img's default) image:
# ~eve/Mail then lists 54,189 entries instead of 100,002.  Version 2 reads back byte for byte.
qemu-img convert -q -c -f raw -O qcow2 -o compat=0.10,cluster_size=65536 "$FS" "$WORK/hostile.qcow2"
qemu-img compare -q -f raw -F qcow2 "$FS" "$WORK/hostile.qcow2" || die "qcow2 differs from the file system"
mv -f "$WORK/hostile.qcow2" "$IMAGE"
(cd "$OUT" && sha256sum "$(basename "$IMAGE")" > "$(basename "$IMAGE").sha256")
echo "== done"
cat "$IMAGE.sha256"
ls -l "$IMAGE"
