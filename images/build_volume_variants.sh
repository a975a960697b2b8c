#!/usr/bin/env bash
# Build the volume-system and file-system variants of the reference images into images/variants/
# (or OUTPUT_DIR): what build_variants.sh cannot make from the committed disks by conversion.
#
#   mbr-extended.E01  MBR: p1 primary NTFS (windows-suspect), p2 extended holding the logical
#                     partitions p5 ext4 (linux-suspect) and p6 FAT32 (macos-suspect)
#   lvm.E01           MBR p1 (type 8e) = LVM2 physical volume, VG "mailvg": LV "root" = the
#                     linux-suspect ext4, LV "win" = the windows-suspect NTFS
#   luks1.E01         MBR p1 = LUKS1 (aes-xts-plain64, password "inboxtrail-luks") holding the
#                     windows-suspect NTFS, p2 = the linux-suspect ext4 in the clear
#   luks2.E01         MBR p1 = LUKS2 (libluksde cannot read it), p2 = the windows-suspect NTFS
#   xfs.E01           MBR p1 = XFS with the linux-suspect tree; /var/mail/carol deleted
#   exfat.E01         MBR p1 = exFAT with the linux-suspect tree (no symlinks: exFAT has none);
#                     /var/mail/carol deleted
#   volume-variants.json   the layout of each image (sfdisk partition names, byte offsets, what is
#                     inside, the LUKS password)
#
# The NTFS, ext4 and FAT32 file systems are the bytes of the committed reference images
# (images/windows-suspect.raw, linux-suspect.raw, macos-suspect.E01), so a collection of each
# variant must find the same files with the same hashes as the reference it carries.
#
# Needs root (loop devices, mounts), and:
#   apt-get update && apt-get install -y cryptsetup lvm2 xfsprogs exfatprogs exfat-fuse \
#       ewf-tools qemu-utils faketime sleuthkit fdisk
# No device-mapper is needed (this kernel has none): LVM metadata is written by pvcreate/
# vgcreate/lvcreate on a loop device with --driverloaded n (no activation), and the logical
# volumes' data is placed with dd at the physical extents `lvs`/`pvs` report; the LUKS volume is
# encrypted offline by `cryptsetup reencrypt --encrypt` (LUKS2, userspace crypto) and converted
# with `cryptsetup convert --type luks1`, because libluksde (what dfvfs reads LUKS with) reads
# LUKS1 only.  XFS and exFAT are populated through a loop mount (exFAT via exfat-fuse: this
# kernel has no exfat driver).  HFS+ is not built: Debian 12 has no hfsprogs (mkfs.hfsplus) and
# this kernel has no hfsplus driver.
#
# Not byte-reproducible: LVM, LUKS (salts) and the mounted file systems carry random ids and the
# build's wall-clock time; the content they carry is checked after the build instead.
#
# Usage: sudo bash images/build_volume_variants.sh [OUTPUT_DIR]   (default: images/variants)
set -euo pipefail
export LC_ALL=C TZ=UTC PYTHONDONTWRITEBYTECODE=1 LVM_SUPPRESS_FD_WARNINGS=1
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "${1:-$HERE/variants}"
OUT="$(cd "${1:-$HERE/variants}" && pwd)"
PY="${PYTHON:-python3}"
WINDOWS="$HERE/windows-suspect.raw"
LINUX="$HERE/linux-suspect.raw"
MACOS_E01="$HERE/macos-suspect.E01"
LUKS_PASSWORD="inboxtrail-luks"
ACQUIRED="2026-10-21 08:00:00"
VG=mailvg
FAKELIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
    [[ -f "$f" ]] && { FAKELIB=$f; break; }
done

die() { echo "build_volume_variants: $*" >&2; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"
for t in sfdisk losetup mount umount cryptsetup pvcreate vgcreate lvcreate lvs pvs vgchange \
         vgremove mkfs.xfs xfs_repair mkfs.exfat fsck.exfat mount.exfat-fuse ewfacquire ewfexport \
         fls icat mmls sha256sum cmp "$PY"; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (see the apt-get line at the top)"
done
[[ $(id -u) == 0 ]] || die "needs root (loop devices and mounts)"
for f in "$WINDOWS" "$LINUX" "$MACOS_E01"; do [[ -f "$f" ]] || die "missing reference image $f"; done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/volume-variants.XXXXXX")"
LOOPS=()
MOUNTS=()
cleanup() {  # undo every mount, volume group and loop device, even after a failure
    local m l
    for m in "${MOUNTS[@]}"; do
        fusermount -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    vgchange --driverloaded n -an "$VG" >/dev/null 2>&1 || true
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
loop() {  # loop FILE [losetup options...] -> prints the device, remembered for cleanup
    local dev
    dev=$(losetup -f --show "$@")
    LOOPS+=("$dev")
    echo "$dev"
}
unloop() { losetup -d "$1"; }

part() {  # part DISK N -> "start size" in sectors (sfdisk's view of partition N)
    sfdisk -d "$1" | "$PY" -c '
import re, sys
disk, n = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = re.match(r"^(\S+?)(\d+) : start=\s*(\d+), size=\s*(\d+)", line)
    if m and m.group(2) == n:
        print(m.group(3), m.group(4)); break
else:
    sys.exit("no partition " + n)' "$1" "$2"
}
extract() {  # extract DISK N OUT: copy partition N's bytes
    local start size
    read -r start size < <(part "$1" "$2")
    dd if="$1" of="$3" bs=512 skip="$start" count="$size" status=none
}
place() {  # place FILE DISK BYTE_OFFSET: write FILE into DISK at the offset
    dd if="$1" of="$2" bs=64K seek="$3" oflag=seek_bytes conv=notrunc status=none
}
ewf() {  # ewf RAW NAME: deflate:best E01, acquisition date fixed with libfaketime
    rm -f "$OUT/$2".E0*
    env ${FAKELIB:+LD_PRELOAD=$FAKELIB FAKETIME="$ACQUIRED"} \
        ewfacquire -u -q -t "$OUT/$2" -f encase6 -c deflate:best -S 1.4GiB -b 64 -B 0 \
        -C "IT-2026-044" -D "$3" -e "inboxtrail reference build" -E "$2" \
        -N "test image, not evidence" -m fixed -M physical -l "$WORK/$2.log" "$1" >/dev/null 2>&1 \
        || { cat "$WORK/$2.log" >&2 || true; die "ewfacquire $2 failed"; }
    rm -f "$WORK/back.raw"
    ewfexport -q -u -f raw -t "$WORK/back" "$OUT/$2.E01" >/dev/null 2>&1
    cmp -s "$WORK/back.raw" "$1" || die "$2.E01 does not export back to its raw disk"
    echo "  $2.E01 = raw disk ($(stat -c %s "$OUT/$2.E01") bytes)"
}
mbr() {  # mbr DISK SECTORS LABEL_ID < sfdisk partition lines
    rm -f "$1"
    truncate -s $(( $2 * 512 )) "$1"
    { printf 'label: dos\nlabel-id: %s\nunit: sectors\n\n' "$3"; cat; } \
        | sfdisk --quiet --no-reread --no-tell-kernel "$1"
}

echo "== reference file systems"
NTFS="$WORK/ntfs.img"; EXT4="$WORK/ext4.img"; FAT="$WORK/fat32.img"
extract "$WINDOWS" 1 "$NTFS"
extract "$LINUX" 1 "$EXT4"
ewfexport -q -u -f raw -t "$WORK/macos" "$MACOS_E01" >/dev/null 2>&1
extract "$WORK/macos.raw" 1 "$FAT"
NTFS_S=$(( $(stat -c %s "$NTFS") / 512 )); EXT4_S=$(( $(stat -c %s "$EXT4") / 512 ))
FAT_S=$(( $(stat -c %s "$FAT") / 512 ))
echo "  NTFS $NTFS_S, ext4 $EXT4_S, FAT32 $FAT_S sectors"

# ---------------------------------------------------------------------------------------------
echo "== MBR with an extended partition: p1 NTFS, p2 extended { p5 ext4, p6 FAT32 }"
P5=$(( 2048 + NTFS_S + 2048 ))               # the first EBR sits 2048 sectors before p5
P6=$(( P5 + EXT4_S + 2048 ))
EXT_START=$(( P5 - 2048 ))
EXT_SIZE=$(( P6 + FAT_S - EXT_START ))
DISK="$WORK/mbr-extended.raw"
mbr "$DISK" $(( EXT_START + EXT_SIZE + 2048 )) 0x45585444 <<EOF
start=2048, size=$NTFS_S, type=7
start=$EXT_START, size=$EXT_SIZE, type=5
start=$P5, size=$EXT4_S, type=83
start=$P6, size=$FAT_S, type=c
EOF
place "$NTFS" "$DISK" $(( 2048 * 512 ))
place "$EXT4" "$DISK" $(( P5 * 512 ))
place "$FAT" "$DISK" $(( P6 * 512 ))
[[ "$(part "$DISK" 5)" == "$P5 $EXT4_S" && "$(part "$DISK" 6)" == "$P6 $FAT_S" ]] \
    || die "sfdisk did not put the logical partitions where asked"
mmls "$DISK" | grep -q "Extended (0x05)" || die "mmls sees no extended partition"
[[ $(mmls "$DISK" | grep -c "Linux (0x83)\|Win95 FAT32 (0x0c)\|NTFS / exFAT (0x07)") == 3 ]] \
    || { mmls "$DISK" >&2; die "mmls does not list the three file-system partitions"; }
ewf "$DISK" mbr-extended "MBR with logical partitions"

# ---------------------------------------------------------------------------------------------
echo "== LVM2: MBR p1 (8e) = PV, VG $VG { root: ext4, win: NTFS }"
PV_S=$(( (1 + 1 + EXT4_S / 2048 + (NTFS_S + 2047) / 2048) * 2048 ))   # 1 MiB metadata + extents + 1 MiB spare
DISK="$WORK/lvm.raw"
mbr "$DISK" $(( 2048 + PV_S )) 0x4c564d32 <<EOF
start=2048, size=$PV_S, type=8e
EOF
vgchange --driverloaded n -an "$VG" >/dev/null 2>&1 && die "a volume group $VG exists on this host already"
DEV=$(loop -o $(( 2048 * 512 )) --sizelimit $(( PV_S * 512 )) "$DISK")
lvm_q() { "$@" 2>&1 | grep -v "Activation disabled\|not zeroed\|device-mapper\|libdevmapper" || true; }
lvm_q pvcreate -y -q --dataalignment 1m --metadatasize 512k "$DEV"
lvm_q vgcreate -q -s 1m "$VG" "$DEV"
lvm_q lvcreate -q --driverloaded n -an -Zn -y -L $(( EXT4_S / 2048 ))m -n root "$VG"
lvm_q lvcreate -q --driverloaded n -an -Zn -y -L $(( (NTFS_S + 2047) / 2048 ))m -n win "$VG"
PE_START=$(pvs --noheadings --units b --nosuffix -o pe_start "$DEV" | tr -d ' ')
EXTENT=$(vgs --noheadings --units b --nosuffix -o vg_extent_size "$VG" | tr -d ' ')
declare -A LV_PE
while read -r name ranges; do  # "root /dev/loop0:0-8"
    LV_PE[$name]=${ranges##*:}; LV_PE[$name]=${LV_PE[$name]%%-*}
    [[ "$ranges" != *" "* ]] || die "LV $name has more than one segment"
done < <(lvs --driverloaded n --noheadings --segments -o lv_name,seg_pe_ranges "$VG" 2>/dev/null)
lvm_q vgchange --driverloaded n -an "$VG"
lvm_q vgexport "$VG"   # like a disk pulled from a powered-off host: nothing to activate here
unloop "$DEV"; LOOPS=("${LOOPS[@]/$DEV}")
for name in root win; do [[ -n "${LV_PE[$name]:-}" ]] || die "no extents for LV $name"; done
LV_ROOT_OFF=$(( 2048 * 512 + PE_START + LV_PE[root] * EXTENT ))
LV_WIN_OFF=$(( 2048 * 512 + PE_START + LV_PE[win] * EXTENT ))
place "$EXT4" "$DISK" "$LV_ROOT_OFF"
place "$NTFS" "$DISK" "$LV_WIN_OFF"
echo "  pe_start $PE_START, extent $EXTENT: root at byte $LV_ROOT_OFF, win at byte $LV_WIN_OFF"
ewf "$DISK" lvm "LVM2 physical volume in an MBR partition"

# ---------------------------------------------------------------------------------------------
echo "== LUKS1: p1 = LUKS1(NTFS), p2 = ext4 in the clear"
LUKS="$WORK/luks.img"
cp "$NTFS" "$LUKS"
truncate -s +4M "$LUKS"    # reencrypt shifts the data by 4 MiB; the LUKS1 header takes 2 MiB
printf '%s' "$LUKS_PASSWORD" | cryptsetup reencrypt --encrypt --type luks2 -q \
    --reduce-device-size 4M --luks2-metadata-size 16k --luks2-keyslots-size 2016k \
    --cipher aes-xts-plain64 --key-size 256 --hash sha256 --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --sector-size 512 --key-file - "$LUKS" 2>&1 \
    | grep -v "keyslots area" || true
cryptsetup convert -q --type luks1 "$LUKS"
LUKS_OFFSET=$(cryptsetup luksDump "$LUKS" | sed -n 's/^Payload offset:[[:space:]]*//p')
[[ "$(cryptsetup luksDump "$LUKS" | sed -n 's/^Version:[[:space:]]*//p')" == 1 ]] || die "not LUKS1"
truncate -s $(( LUKS_OFFSET * 512 + NTFS_S * 512 )) "$LUKS"   # drop the encrypted spare tail
printf '%s' "$LUKS_PASSWORD" | cryptsetup open --test-passphrase --key-file - "$LUKS" \
    || die "the password does not open the LUKS1 volume"
LUKS_S=$(( $(stat -c %s "$LUKS") / 512 ))
P2=$(( 2048 + LUKS_S + 2048 ))
DISK="$WORK/luks1.raw"
mbr "$DISK" $(( P2 + EXT4_S + 2048 )) 0x4c554b53 <<EOF
start=2048, size=$LUKS_S, type=83
start=$P2, size=$EXT4_S, type=83
EOF
place "$LUKS" "$DISK" $(( 2048 * 512 ))
place "$EXT4" "$DISK" $(( P2 * 512 ))
ewf "$DISK" luks1 "LUKS1 partition and a plain ext4 partition"

echo "== LUKS2: p1 = LUKS2 header over a never-written data area, p2 = NTFS in the clear"
# libluksde reads LUKS1 only: this image checks that an unreadable LUKS2 volume is reported and
# the partition beside it still collected. Its data area is never written (luksFormat alone, no
# dm-crypt), so it stays small; the password is the LUKS1 image's.
LUKS2="$WORK/luks2.img"
truncate -s 3M "$LUKS2"
printf '%s' "$LUKS_PASSWORD" | cryptsetup luksFormat --type luks2 -q --luks2-metadata-size 16k \
    --luks2-keyslots-size 1M --cipher aes-xts-plain64 --key-size 256 --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file - "$LUKS2" 2>&1 \
    | grep -v "too small for activation\|keyslots area" || true
[[ "$(cryptsetup luksDump "$LUKS2" | sed -n 's/^Version:[[:space:]]*//p')" == 2 ]] || die "not LUKS2"
L2_S=$(( $(stat -c %s "$LUKS2") / 512 ))
L2_P2=$(( 2048 + L2_S + 2048 ))
DISK="$WORK/luks2.raw"
mbr "$DISK" $(( L2_P2 + NTFS_S + 2048 )) 0x4c554b32 <<EOF
start=2048, size=$L2_S, type=83
start=$L2_P2, size=$NTFS_S, type=7
EOF
place "$LUKS2" "$DISK" $(( 2048 * 512 ))
place "$NTFS" "$DISK" $(( L2_P2 * 512 ))
ewf "$DISK" luks2 "LUKS2 partition and a plain NTFS partition"

# ---------------------------------------------------------------------------------------------
echo "== staging the linux-suspect tree for XFS and exFAT"
STAGE="$WORK/stage"
"$PY" "$HERE/linux_suspect.py" stage "$STAGE" "$WORK/stage-meta" >/dev/null
while IFS=$'\t' read -r kind path mode uid gid atime mtime ctime; do
    p="$STAGE${path%/}"; [[ "$path" == / ]] && p="$STAGE"
    chown -h "$uid:$gid" "$p"
    if [[ "$kind" != l ]]; then chmod "$mode" "$p"; fi
    touch -h -m -d "@$mtime" "$p"
    touch -h -a -d "@$atime" "$p"
done < "$WORK/stage-meta/manifest.tsv"
DEL_PATH=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$WORK/stage-meta/delete.json")
DEL_SHA=$(sha256sum "$STAGE$DEL_PATH" | cut -d' ' -f1)
MNT="$WORK/mnt"; mkdir -p "$MNT"

echo "== XFS (32 MiB: below mkfs.xfs's 300 MB floor for new file systems, allowed with TEST_DIR)"
XFS="$WORK/xfs.img"
truncate -s 32M "$XFS"
env ${FAKELIB:+LD_PRELOAD=$FAKELIB FAKETIME="2026-09-14 10:22:00"} TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 \
    mkfs.xfs -q -f -L mailhost-xfs -m uuid=6d61696c-7866-7300-8b75-737065637400 "$XFS"
DEV=$(loop "$XFS")
mount -t xfs "$DEV" "$MNT"; MOUNTS+=("$MNT")
cp -a "$STAGE"/. "$MNT"/
sync
rm "$MNT$DEL_PATH"
umount "$MNT"; MOUNTS=()
unloop "$DEV"; LOOPS=("${LOOPS[@]/$DEV}")
xfs_repair -n "$XFS" >"$WORK/xfs_repair.log" 2>&1 || { cat "$WORK/xfs_repair.log" >&2; die "xfs_repair -n"; }
DISK="$WORK/xfs.raw"
mbr "$DISK" $(( 2048 + 65536 + 2048 )) 0x58465331 <<EOF
start=2048, size=65536, type=83
EOF
place "$XFS" "$DISK" $(( 2048 * 512 ))
ewf "$DISK" xfs "XFS partition"

echo "== exFAT (8 MiB, exfat-fuse on a loop device)"
EXFAT="$WORK/exfat.img"
truncate -s 8M "$EXFAT"
mkfs.exfat -L MAILEXFAT "$EXFAT" >/dev/null
DEV=$(loop "$EXFAT")
mount.exfat-fuse -o noatime "$DEV" "$MNT"; MOUNTS+=("$MNT")
(cd "$STAGE" && find . -mindepth 1 -type d -print0 | sort -z | xargs -0 -I{} mkdir -p "$MNT/{}")
(cd "$STAGE" && find . -type f -print0 | sort -z | xargs -0 -I{} cp --preserve=timestamps "{}" "$MNT/{}")
sync
rm "$MNT$DEL_PATH"
fusermount -u "$MNT"; MOUNTS=()
unloop "$DEV"; LOOPS=("${LOOPS[@]/$DEV}")
fsck.exfat -n "$EXFAT" >"$WORK/fsck.exfat.log" 2>&1 || { cat "$WORK/fsck.exfat.log" >&2; die "fsck.exfat -n"; }
fls -r -d -p "$EXFAT" | grep -q "${DEL_PATH#/}\$" || die "fls -d: deleted $DEL_PATH not listed on exFAT"
DISK="$WORK/exfat.raw"
mbr "$DISK" $(( 2048 + 16384 + 2048 )) 0x45584641 <<EOF
start=2048, size=16384, type=7
EOF
place "$EXFAT" "$DISK" $(( 2048 * 512 ))
ewf "$DISK" exfat "exFAT partition"

# ---------------------------------------------------------------------------------------------
echo "== volume-variants.json"
"$PY" - "$OUT/volume-variants.json" <<EOF
import json, sys
layout = {
  "luks_password": "$LUKS_PASSWORD",
  "deleted_path": "$DEL_PATH",
  "deleted_sha256": "$DEL_SHA",
  "images": {
    "mbr-extended.E01": {"volumes": [
      {"partition": "p1", "offset": $(( 2048 * 512 )), "filesystem": "ntfs", "reference": "windows-suspect.raw"},
      {"partition": "p5", "offset": $(( P5 * 512 )), "filesystem": "ext4", "reference": "linux-suspect.raw", "logical": True},
      {"partition": "p6", "offset": $(( P6 * 512 )), "filesystem": "fat32", "reference": "macos-suspect.E01", "logical": True}]},
    "lvm.E01": {"volumes": [
      {"partition": "p1", "lv": "root", "offset": $LV_ROOT_OFF, "filesystem": "ext4", "reference": "linux-suspect.raw"},
      {"partition": "p1", "lv": "win", "offset": $LV_WIN_OFF, "filesystem": "ntfs", "reference": "windows-suspect.raw"}]},
    "luks1.E01": {"volumes": [
      {"partition": "p1", "offset": $(( 2048 * 512 )), "encrypted": "luks1", "payload_offset": $(( 2048 * 512 + LUKS_OFFSET * 512 )), "filesystem": "ntfs", "reference": "windows-suspect.raw"},
      {"partition": "p2", "offset": $(( P2 * 512 )), "filesystem": "ext4", "reference": "linux-suspect.raw"}]},
    "luks2.E01": {"volumes": [
      {"partition": "p1", "offset": $(( 2048 * 512 )), "encrypted": "luks2", "filesystem": None},
      {"partition": "p2", "offset": $(( L2_P2 * 512 )), "filesystem": "ntfs", "reference": "windows-suspect.raw"}]},
    "xfs.E01": {"volumes": [
      {"partition": "p1", "offset": $(( 2048 * 512 )), "filesystem": "xfs", "reference": "linux-suspect.raw", "tree_of": "linux-suspect"}]},
    "exfat.E01": {"volumes": [
      {"partition": "p1", "offset": $(( 2048 * 512 )), "filesystem": "exfat", "reference": "linux-suspect.raw", "tree_of": "linux-suspect", "no_symlinks": True}]},
  },
}
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(layout, handle, indent=1, sort_keys=True)
    handle.write("\n")
EOF

echo "== SHA256SUMS (this script's files replaced, the others kept)"
MINE="mbr-extended.E01 lvm.E01 luks1.E01 luks2.E01 xfs.E01 exfat.E01 volume-variants.json"
{
    [[ -f "$OUT/SHA256SUMS" ]] && grep -v -E "  ($(echo "$MINE" | sed 's/ /|/g; s/\./\\./g'))\$" "$OUT/SHA256SUMS" || true
    (cd "$OUT" && sha256sum $MINE)
} | sort -k2 > "$WORK/SHA256SUMS"
mv "$WORK/SHA256SUMS" "$OUT/SHA256SUMS"
(cd "$OUT" && ls -l $MINE)
echo "== done"
