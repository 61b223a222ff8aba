#!/bin/bash
# Builds the qemu guest for the real-BlueZ test tier into a cache dir OUTSIDE the repository and reuses it when
# it is already there: Debian's own kernel (Bluetooth + hci_vhci as modules), a debootstrap root with bluez,
# bluez-test-tools (btvirt, btmgmt) and dbus, and a busybox initramfs that mounts that root over 9p.
#
# usage: build-guest.sh            env: BLUEZ_VM_CACHE (default /var/cache/bluez-cm-vm)
# Needs root (apt-get, debootstrap, chroot). Prints "[build Ns] ..." progress lines on stderr and, on success,
# the cache dir on stdout.
set -euo pipefail
CACHE=${BLUEZ_VM_CACHE:-/var/cache/bluez-cm-vm}
HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
say() { echo "[build $(($(date +%s) - T0))s] $*" >&2; }

# The build is keyed by this script and the initramfs init: when either changes, the guest is rebuilt. guest-init
# and the control server are NOT part of the key; boot.sh copies them into the root on every boot.
KEY=$(cat "$HERE/build-guest.sh" "$HERE/guest/initrd-init" | sha256sum | cut -c1-16)

need_root() { [ "$(id -u)" = 0 ] || { echo "build-guest: must run as root ($1)" >&2; exit 3; }; }
install_host_packages() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -x /bin/busybox ] && file_is_static /bin/busybox || missing+=(busybox-static)
  [ ${#missing[@]} = 0 ] && return 0
  need_root "apt-get install ${missing[*]}"
  say "installing host packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# busybox (dynamic) cannot run inside the initramfs, which has no libc.
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }

install_host_packages
if [ -f "$CACHE/.built" ] && [ "$(cat "$CACHE/.built")" = "$KEY" ]; then
  say "reusing guest in $CACHE"
  echo "$CACHE"
  exit 0
fi
need_root "debootstrap"
say "building guest into $CACHE (key $KEY)"
rm -rf "$CACHE"
mkdir -p "$CACHE"
cd "$CACHE"

# Mirror and suite come from this machine's apt sources at run time; they are never written into a file.
read_sources() {
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    awk '/^URIs:/ && !u {u=$2} /^Suites:/ && !s {s=$2} END {print u, s}' /etc/apt/sources.list.d/*.sources
  else
    awk '$1=="deb" && $2 !~ /^\[/ {print $2, $3; exit} $1=="deb" && $2 ~ /^\[/ {print $3, $4; exit}' /etc/apt/sources.list
  fi
}
read -r MIRROR SUITE < <(read_sources)
[ -n "${MIRROR:-}" ] && [ -n "${SUITE:-}" ] || { echo "build-guest: no Debian mirror found in apt sources" >&2; exit 4; }

# Kernel: Debian's own, unmodified. The ABI name changes with point releases, so resolve it from the metapackage.
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
KVER=${KPKG#linux-image-}
mkdir -p debs kernel
(cd debs && apt-get download -qq "$KPKG")
dpkg -x debs/"$KPKG"_*.deb kernel
cp kernel/boot/vmlinuz-"$KVER" vmlinuz
say "kernel $KVER extracted"

debootstrap --variant=minbase --include=bluez,bluez-test-tools,dbus,kmod,iproute2,procps,python3 \
  "$SUITE" "$CACHE/root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
  { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 5; }
say "debootstrap done"

# Keep only the kernel modules the guest loads (the full set is ~400 MB).
cp -a kernel/lib/modules root/lib/
chroot root depmod "$KVER"
WANT="hci_vhci bluetooth af_alg algif_hash algif_skcipher cmac ecb ecdh_generic virtio_net virtio_pci 9pnet_virtio 9p"
KEEP=$(for m in $WANT; do chroot root modprobe -S "$KVER" --show-depends "$m"; done | awk '/^insmod/{print $2}' | sort -u)
find root/lib/modules/"$KVER"/kernel -name '*.ko' | sed 's|^root||' | sort | comm -23 - <(echo "$KEEP") |
  sed 's|^|root|' | xargs -r rm -f
find root/lib/modules/"$KVER"/kernel -type d -empty -delete
chroot root depmod "$KVER"
rm -rf kernel debs
say "modules trimmed: $(find root/lib/modules -name '*.ko' | wc -l) kept"

# Initramfs: static busybox + the virtio/9p modules; its init mounts the 9p root and switch_roots into guest-init.
mkdir -p initrd/bin initrd/dev initrd/proc initrd/sys initrd/newroot initrd/mods
cp /bin/busybox initrd/bin/
for a in sh mount umount insmod switch_root mkdir echo cat sleep; do ln -s busybox initrd/bin/$a; done
# --show-depends lists dependencies first, so the file "order" is a valid load order for insmod.
for m in virtio_pci 9pnet_virtio 9p; do chroot root modprobe -S "$KVER" --show-depends "$m"; done |
  awk '/^insmod/ && !seen[$2]++ {print $2}' | while read -r ko; do
    cp "root$ko" initrd/mods/
    basename "$ko" >>initrd/mods/order
  done
install -m755 "$HERE/guest/initrd-init" initrd/init
(cd initrd && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >../initrd.gz)
rm -rf initrd
echo "$KEY" >"$CACHE/.built"
say "guest built; root $(du -sh root | cut -f1)"
echo "$CACHE"
