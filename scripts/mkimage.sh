#!/usr/bin/env bash
# Builds the Koala demo guest image set from Debian 12 packages:
#   OUT/vmlinuz     the Debian cloud kernel (linux-image-cloud-amd64's image)
#   OUT/initrd.img  busybox ramdisk (newc cpio, gzip) with images/demo/init-ramdisk
#                   as /init plus the kernel modules it needs
#   OUT/root.img    sparse ext4 machine image: busybox-static and images/demo/init
#                   as /sbin/init (DHCP, metadata, user-data, "is up" line)
# OUT is $1, default var/images/demo under the repository. The kernel .deb is
# cached in OUT/../cache. Nothing is done when the outputs are newer than this
# script and images/demo/* (FORCE=1 rebuilds). Needs root (apt, mknod) only
# when it builds; no loop mounts, no systemd. ROOT_SIZE sets root.img's size.
#   scripts/mkimage.sh [OUT]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self=$repo/scripts/mkimage.sh
src=$repo/images/demo
out=${1:-$repo/var/images/demo}
root_size=${ROOT_SIZE:-32M}
meta=linux-image-cloud-amd64
# Modules to load at boot, by name; builtins are skipped. button and evdev
# give the ACPI power button as /dev/input/event*; aoe is packed, not loaded.
load_modules=(virtio_pci virtio_blk virtio_net ext4 button evdev)
required_modules=(virtio_pci virtio_blk virtio_net ext4)
pack_modules=(aoe)

say() { echo "mkimage: $*"; }
die() { echo "mkimage: $*" >&2; exit 1; }

# --- up to date? ------------------------------------------------------------
outputs=("$out/vmlinuz" "$out/initrd.img" "$out/root.img")
uptodate() {
  local f
  for f in "${outputs[@]}"; do
    [[ -s $f ]] || return 1
    [[ -z $(find "$self" "$src" -newer "$f" -print -quit) ]] || return 1
  done
}
if [[ ${FORCE:-0} != 1 ]] && uptodate; then
  say "up to date: $out"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root to build (apt-get, mknod)"
for f in init init-ramdisk udhcpc.script acpi-power; do
  [[ -f $src/$f ]] || die "missing $src/$f"
done

# --- host packages ----------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() {
  ((apt_updated)) && return 0
  apt_updated=1
  apt-get update -qq
}
missing=()
for p in busybox-static cpio e2fsprogs qemu-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    apt_update
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
busybox=/bin/busybox
[[ -x $busybox ]] || die "$busybox not found (busybox-static)"

# --- kernel package (cached) ------------------------------------------------
parent=$(dirname "$out")
cache=$parent/cache
mkdir -p "$out" "$cache"
kpkg() { apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
pkg=$(kpkg)
if [[ -z $pkg ]]; then
  apt_update || true
  pkg=$(kpkg)
fi
deb=""
if [[ -n $pkg ]]; then
  deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
else
  # apt knows no kernel (offline, no lists): fall back to a cached one.
  deb=$(find "$cache" -maxdepth 1 -name 'linux-image-*.deb' | sort -V | tail -n 1)
  [[ -n $deb ]] || die "cannot resolve $meta with apt-cache and no cached kernel in $cache"
fi

work=$(mktemp -d "$parent/.mkimage.XXXXXX")
dl=""
trap 'rm -rf "$work" ${dl:+"$dl"}' EXIT

if [[ -z $deb ]]; then
  say "downloading $pkg"
  # apt-get download drops privileges to _apt, which must reach and write
  # this directory (so not one under $work, which is private).
  dl=$(mktemp -d)
  chmod 0755 "$dl"
  if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
  (cd "$dl" && apt-get download -qq "$pkg") || { apt_update && (cd "$dl" && apt-get download -qq "$pkg"); }
  f=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
  [[ -n $f ]] || die "apt-get download $pkg produced no .deb"
  deb=$cache/$(basename "$f")
  mv "$f" "$deb.tmp" && mv "$deb.tmp" "$deb"
  find "$cache" -maxdepth 1 -name 'linux-image-*.deb' ! -name "${deb##*/}" -delete # older kernels
fi
say "kernel package $(basename "$deb")"

kx=$work/kernel
dpkg-deb -x "$deb" "$kx"
kimg=$(find "$kx/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[[ -n $kimg ]] || die "no boot/vmlinuz-* in $deb"
kver=${kimg##*/vmlinuz-}
kmods=""
for d in "$kx/lib/modules/$kver" "$kx/usr/lib/modules/$kver"; do
  [[ -d $d ]] && kmods=$d && break
done
[[ -n $kmods ]] || die "no modules directory for $kver in $deb"

# --- modules: closure over depends=, in load order -------------------------
# Index every module file by name (dashes as underscores); builtins by name.
declare -A modpath=() builtin=() seen=()
while IFS= read -r p; do
  n=${p##*/}
  n=${n%%.ko*}
  modpath[${n//-/_}]=${p#"$kmods"/}
done < <(find "$kmods" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
if [[ -f $kmods/modules.builtin ]]; then
  while IFS= read -r p; do
    n=${p##*/}
    n=${n%%.ko*}
    builtin[${n//-/_}]=1
  done <"$kmods/modules.builtin"
fi

mstage=$work/modules/lib/modules/$kver
mkdir -p "$mstage"
order=()   # load order (dependencies first), paths relative to $mstage

# stage NAME: copy (uncompressed) the module and its dependencies into $mstage;
# prints nothing, appends to order[]. Returns 1 if NAME is neither a module
# nor builtin.
stage() {
  local n=${1//-/_} rel dst dep deps
  [[ -n ${seen[$n]:-} ]] && return 0
  seen[$n]=1
  if [[ -n ${builtin[$n]:-} ]]; then return 0; fi
  rel=${modpath[$n]:-}
  [[ -n $rel ]] || return 1
  dst=$mstage/${rel%.ko*}.ko
  mkdir -p "$(dirname "$dst")"
  case $rel in
    *.ko.xz) xz -dc "$kmods/$rel" >"$dst" ;;
    *.ko.zst) zstd -qdc "$kmods/$rel" >"$dst" ;;
    *.ko.gz) gzip -dc "$kmods/$rel" >"$dst" ;;
    *) cp "$kmods/$rel" "$dst" ;;
  esac
  deps=$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | head -n 1)
  for dep in ${deps//,/ }; do
    stage "$dep" || die "module $n needs $dep, which $kver lacks"
  done
  order+=("${rel%.ko*}.ko")
}
for m in "${load_modules[@]}"; do
  if ! stage "$m"; then
    if [[ " ${required_modules[*]} " == *" $m "* ]]; then die "kernel $kver has no module or builtin $m"; fi
    say "warning: kernel $kver has no $m"
  fi
done
printf '%s\n' "${order[@]}" >"$mstage/koala.load"
say "modules loaded at boot: ${order[*]##*/}"
for m in "${pack_modules[@]}"; do
  stage "$m" || say "warning: kernel $kver has no $m"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
  [[ -f $kmods/$f ]] && cp "$kmods/$f" "$mstage/"
done
"$busybox" depmod -b "$work/modules" "$kver" # modules.dep for modprobe (aoe later)

# --- file trees -------------------------------------------------------------
# common DIR: busybox with its applet links, the guest scripts, /etc basics.
common() {
  local d=$1 a
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,usr/share/udhcpc,etc/acpi/PWRF,lib,proc,sys,dev,run,tmp,root,var/log}
  chmod 1777 "$d/tmp"
  chmod 0700 "$d/root"
  cp "$busybox" "$d/bin/busybox"
  while IFS= read -r a; do
    case $a in bin/busybox | sbin/init | init | linuxrc) continue ;; esac
    [[ $a == */* ]] || continue
    ln -sf /bin/busybox "$d/$a"
  done < <("$busybox" --list-full)
  install -m 0755 "$src/init" "$d/sbin/init"
  install -m 0755 "$src/udhcpc.script" "$d/usr/share/udhcpc/default.script"
  install -m 0755 "$src/acpi-power" "$d/etc/acpi/PWRF/00000080"
  cp -a "$work/modules/lib/modules" "$d/lib/"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
  printf 'root:x:0:\n' >"$d/etc/group"
  printf 'koala-demo\n' >"$d/etc/hostname"
  : >"$d/etc/resolv.conf"
  mknod -m 0600 "$d/dev/console" c 5 1
  mknod -m 0666 "$d/dev/null" c 1 3
}

rd=$work/ramdisk
common "$rd"
install -m 0755 "$src/init-ramdisk" "$rd/init"
mkdir -p "$rd/newroot"

rt=$work/root
common "$rt"
mkdir -p "$rt"/{home,mnt,var/lib}

# --- outputs ----------------------------------------------------------------
o=$work/out
mkdir -p "$o"
cp "$kimg" "$o/vmlinuz"
(cd "$rd" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9n >"$o/initrd.img"
truncate -s "$root_size" "$o/root.img"
mkfs.ext4 -q -F -L koala-root -m 0 -N 2048 -J size=1 -E root_owner=0:0 -d "$rt" "$o/root.img"
for f in vmlinuz initrd.img root.img; do
  mv -f "$o/$f" "$out/$f"
done
say "built $out (kernel $kver): $(cd "$out" && du -h --apparent-size vmlinuz initrd.img root.img | awk '{printf "%s %s, ", $2, $1}')root.img uses $(du -h "$out/root.img" | cut -f1) on disk"
