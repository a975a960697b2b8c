#!/usr/bin/env bash
# Build images/macos-suspect.E01: a GPT disk with one FAT32 partition (sector 2048) that holds a
# macOS home directory layout (Apple Mail V10 store, .zsh_history) for user erin, one .emlx of it
# deleted inside the image; plus macos-suspect.E01.sha256 and macos-suspect.scenario.json.
#
# Why FAT32 and not HFS+: Debian 12 has no hfsprogs (mkfs.hfsplus) and this kernel has no hfsplus
# module, so HFS+ cannot be written here. FAT32 needs >= 65525 clusters (a 34 MiB volume), so the
# raw disk is not committed: only its E01 (deflate:best), which is about 100 KiB.
#
# Nothing is mounted: mtools writes the file system, under libfaketime so that directory entry
# times follow the story. Needs: dosfstools (mkfs.fat), mtools, gdisk (sgdisk), ewf-tools
# (ewfacquire, ewfexport), faketime, sleuthkit (fls, icat), python3 >= 3.11.
#   apt-get install -y dosfstools mtools gdisk ewf-tools faketime sleuthkit
#
# Usage: bash images/build_macos_suspect.sh [OUTPUT_DIR]   (default: images/)
set -euo pipefail
export LC_ALL=C TZ=UTC PYTHONDONTWRITEBYTECODE=1 MTOOLS_SKIP_CHECK=1
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(cd "${1:-$HERE}" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
GEN="$HERE/macos_suspect.py"
PART_START=2048
PART_SECTORS=69632                  # 34 MiB: the smallest FAT32 with 512-byte clusters
DISK_SECTORS=$(( PART_START + PART_SECTORS + 2048 ))
GPT_DISK_GUID=4d41434f-2d45-5249-4e00-000000000001
GPT_PART_GUID=4d41434f-2d45-5249-4e00-000000000002
FAKELIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
    [[ -f "$f" ]] && { FAKELIB=$f; break; }
done

die() { echo "build_macos_suspect: $*" >&2; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"
for t in mkfs.fat mmd mcopy mdel sgdisk ewfacquire fls icat dd "$PY"; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"
done
[[ -n "$FAKELIB" ]] || die "libfaketime not found (apt-get install -y faketime)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/macos-suspect.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FS="$WORK/fs.fat"; DISK="$WORK/macos-suspect.raw"; CLOCK="$WORK/clock"
faked() { LD_PRELOAD="$FAKELIB" FAKETIME_TIMESTAMP_FILE="$CLOCK" FAKETIME_NO_CACHE=1 "$@"; }
at() { date -u -d "$1" '+%Y-%m-%d %H:%M:%S' > "$CLOCK"; }

echo "== staging tree"
"$PY" "$GEN" stage "$WORK/stage" "$WORK"

echo "== mkfs.fat -F 32 (--invariant), mtools under libfaketime"
truncate -s $(( PART_SECTORS * 512 )) "$FS"
at 2026-09-05T12:00:00
faked mkfs.fat -F 32 -s 1 -S 512 -h "$PART_START" -i 4d41434f -n "MACINTOSHHD" --invariant "$FS" >/dev/null
"$PY" - "$WORK/plan.json" > "$WORK/ops.tsv" <<'EOF'
import json, sys
plan = json.load(open(sys.argv[1]))
for d in plan["dirs"]:
    print(f"d\t{d['time']}\t{d['path']}")
for f in plan["files"]:
    print(f"f\t{f['mtime']}\t{f['path']}")
for x in plan["delete"]:
    print(f"x\t{x['time']}\t{x['path']}")
EOF
while IFS=$'\t' read -r op when path; do
    at "$when"
    case "$op" in
        d) faked mmd -i "$FS" "::$path" ;;
        f) faked mcopy -i "$FS" "$WORK/stage$path" "::$path" ;;
        x) faked mdel -i "$FS" "::$path" ;;
    esac
done < "$WORK/ops.tsv"
fsck.fat -n "$FS" >/dev/null 2>&1 || { fsck.fat -n "$FS" >&2; die "fsck.fat found problems"; }

echo "== GPT disk (sgdisk), partition at sector $PART_START"
truncate -s $(( DISK_SECTORS * 512 )) "$DISK"
sgdisk -o -n "1:$PART_START:$(( PART_START + PART_SECTORS - 1 ))" -t 1:0700 \
    -c "1:MACINTOSH HD" -u "1:$GPT_PART_GUID" -U "$GPT_DISK_GUID" "$DISK" >/dev/null 2>&1 \
    || die "sgdisk failed"
dd if="$FS" of="$DISK" bs=512 seek="$PART_START" conv=notrunc status=none

echo "== read back (fls/icat), ground truth"
"$PY" "$GEN" finalize "$WORK" "$DISK" "$PART_START" "$WORK/scenario.json"
RAW_SHA=$(sha256sum "$DISK" | cut -d' ' -f1)
"$PY" - "$WORK/scenario.json" "$RAW_SHA" "$(stat -c %s "$DISK")" <<'EOF'
import json, sys
p = sys.argv[1]; s = json.load(open(p))
s["raw_media"] = {"sha256": sys.argv[2], "size": int(sys.argv[3]),
                  "note": "the raw disk inside the E01 (not committed)"}
open(p, "w").write(json.dumps(s, indent=1, ensure_ascii=False) + "\n")
EOF

echo "== E01 (ewfacquire, deflate:best)"
rm -f "$OUT"/macos-suspect.E0*
LD_PRELOAD="$FAKELIB" FAKETIME="2026-10-21 09:00:00" \
    ewfacquire -u -q -t "$OUT/macos-suspect" -f encase6 -c deflate:best -b 64 -B 0 \
    -C "IT-2026-044" -D "erins-mbp internal disk (FAT32 stand-in)" -e "inboxtrail reference build" \
    -E "ERINS-MBP-DISK0" -N "test image, not evidence" -m fixed -M physical \
    -l "$WORK/ewf.log" "$DISK" >/dev/null 2>&1 || die "ewfacquire failed"
ewfexport -q -u -f raw -t "$WORK/back" "$OUT/macos-suspect.E01" >/dev/null 2>&1
cmp -s "$WORK/back.raw" "$DISK" || die "E01 does not convert back to the raw disk"
mv -f "$WORK/scenario.json" "$OUT/macos-suspect.scenario.json"
(cd "$OUT" && sha256sum macos-suspect.E01 > macos-suspect.E01.sha256)
echo "== done"
cat "$OUT/macos-suspect.E01.sha256"; echo "raw disk sha256 $RAW_SHA"
ls -l "$OUT/macos-suspect.E01"
