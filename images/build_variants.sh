#!/usr/bin/env bash
# Build container and volume-system variants of the Windows reference image into
# images/variants/ (or OUTPUT_DIR), with one SHA256SUMS file for all of them.
#
#   MBR disk (windows-suspect.raw):      split raw .001/.002, E01 (deflate:best), split
#                                        E01/E02/..., VMDK (streamOptimized), VHD (dynamic),
#                                        VHDX (dynamic), QCOW2 (plain and compressed)
#   GPT disk (windows-suspect-gpt.raw):  E01 (the raw GPT disk is in images/)
#
# Every variant holds the same NTFS bytes at sector 2048, so a collector must find the same
# files with the same hashes in each.  qcow2 and split raw are byte-reproducible; E01 is made
# under libfaketime so its acquisition date is fixed, but libewf and qemu-img write random set /
# disk identifiers into E01, VMDK, VHD and VHDX, so those bytes differ between builds (the
# content they carry does not; the script checks that by converting every variant back to raw).
#
# Needs: ewf-tools (ewfacquire, ewfexport), qemu-utils (qemu-img), coreutils, faketime.
#   apt-get install -y ewf-tools qemu-utils faketime
# Usage: bash images/build_variants.sh [OUTPUT_DIR]   (default: images/variants)
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "${1:-$HERE/variants}"
OUT="$(cd "${1:-$HERE/variants}" && pwd)"
MBR="$HERE/windows-suspect.raw"
GPT="$HERE/windows-suspect-gpt.raw"
ACQUIRED="2026-10-21 08:00:00"     # when the examiner imaged the disk
FAKELIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
    [[ -f "$f" ]] && { FAKELIB=$f; break; }
done

die() { echo "build_variants: $*" >&2; exit 1; }
for t in ewfacquire ewfexport qemu-img split sha256sum cmp; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (apt-get install -y ewf-tools qemu-utils)"
done
[[ -f "$MBR" && -f "$GPT" ]] || die "build the Windows image first (images/build_windows_suspect.sh)"
LINUX="$HERE/linux-suspect.raw"
MACOS_E01="$HERE/macos-suspect.E01"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/variants.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

ewf() {  # ewf SOURCE TARGET_BASENAME SEGMENT_SIZE COMPRESSION
    local src=$1 target=$2 seg=$3 comp=$4
    rm -f "$OUT/$target".E0*
    env ${FAKELIB:+LD_PRELOAD=$FAKELIB FAKETIME="$ACQUIRED"} \
        ewfacquire -u -q -t "$OUT/$target" -f encase6 -c "$comp" -S "$seg" -b 64 -B 0 \
        -C "IT-2026-044" -D "WS-DAVE01 system disk" -e "inboxtrail reference build" \
        -E "WS-DAVE01-DISK0" -N "test image, not evidence" -m fixed -M physical \
        -l "$WORK/$target.log" "$src" >/dev/null 2>&1 || { cat "$WORK/$target.log" >&2 || true; die "ewfacquire $target failed"; }
}

echo "== split raw (.001, .002, .003): 2 MiB segments of the MBR disk"
rm -f "$OUT"/windows-suspect.raw.0*
split -b 2M -d -a 3 --numeric-suffixes=1 "$MBR" "$OUT/windows-suspect.raw."

echo "== E01: MBR (deflate:best), GPT (deflate:best), split MBR (no compression, 1 MiB segments)"
ewf "$MBR" windows-suspect 1.4GiB deflate:best
ewf "$GPT" windows-suspect-gpt 1.4GiB deflate:best
ewf "$MBR" windows-suspect-split 1MiB none

echo "== qemu-img: VMDK, VHD, VHDX, QCOW2"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$MBR" "$OUT/windows-suspect.vmdk"
qemu-img convert -q -f raw -O vpc -o subformat=dynamic "$MBR" "$OUT/windows-suspect.vhd"
qemu-img convert -q -f raw -O vhdx -o subformat=dynamic,block_size=1M,log_size=1M "$MBR" "$OUT/windows-suspect.vhdx"
qemu-img convert -q -f raw -O qcow2 "$MBR" "$OUT/windows-suspect.qcow2"
# compressed clusters (qemu-img -c): libqcow 20260703 reads some of them back as zeros
qemu-img convert -q -c -f raw -O qcow2 "$MBR" "$OUT/windows-suspect-compressed.qcow2"

if [[ -f "$LINUX" ]]; then
    echo "== Linux ext4 image: E01, VMDK"
    ewf "$LINUX" linux-suspect 1.4GiB deflate:best
    qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$LINUX" "$OUT/linux-suspect.vmdk"
fi
MACOS=""
if [[ -f "$MACOS_E01" ]]; then
    echo "== macOS-layout FAT32 image: VMDK, QCOW2 (from the E01's media)"
    ewfexport -q -u -f raw -t "$WORK/macos" "$MACOS_E01" >/dev/null 2>&1
    MACOS="$WORK/macos.raw"
    qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$MACOS" "$OUT/macos-suspect.vmdk"
    qemu-img convert -q -f raw -O qcow2 "$MACOS" "$OUT/macos-suspect.qcow2"
fi

echo "== check: every variant converts back to the source disk byte for byte"
back() {  # back VARIANT SOURCE
    local v=$1 src=$2 raw="$WORK/back.raw"
    rm -f "$raw"
    case "$v" in
        *.E01) ewfexport -q -u -f raw -t "$WORK/back" "$OUT/$v" >/dev/null 2>&1; raw="$WORK/back.raw" ;;
        *.raw.001) cat "$OUT"/windows-suspect.raw.0* > "$raw" ;;
        *.vmdk) qemu-img convert -q -O raw "$OUT/$v" "$raw"; truncate -s "$(stat -c %s "$src")" "$raw" ;;
        *.vhd) qemu-img convert -q -f vpc -O raw "$OUT/$v" "$raw"; truncate -s "$(stat -c %s "$src")" "$raw" ;;
        *.vhdx) qemu-img convert -q -f vhdx -O raw "$OUT/$v" "$raw"; truncate -s "$(stat -c %s "$src")" "$raw" ;;
        *.qcow2) qemu-img convert -q -f qcow2 -O raw "$OUT/$v" "$raw"; truncate -s "$(stat -c %s "$src")" "$raw" ;;
    esac
    cmp -s "$raw" "$src" || die "$v does not convert back to $(basename "$src")"
    echo "  $v = $(basename "$src")"
}
back windows-suspect.raw.001 "$MBR"
back windows-suspect.E01 "$MBR"
back windows-suspect-gpt.E01 "$GPT"
back windows-suspect-split.E01 "$MBR"
back windows-suspect.vmdk "$MBR"
back windows-suspect.vhd "$MBR"
back windows-suspect.vhdx "$MBR"
back windows-suspect.qcow2 "$MBR"
back windows-suspect-compressed.qcow2 "$MBR"
if [[ -f "$LINUX" ]]; then back linux-suspect.E01 "$LINUX"; back linux-suspect.vmdk "$LINUX"; fi
if [[ -n "$MACOS" ]]; then back macos-suspect.vmdk "$MACOS"; back macos-suspect.qcow2 "$MACOS"; fi

(cd "$OUT" && ls | grep -v '^SHA256SUMS$' | sort | xargs sha256sum > SHA256SUMS)
echo "== done"
cat "$OUT/SHA256SUMS"
du -b "$OUT"/* | sort -k2
