#!/bin/bash
# Boots the cached guest (built by build-guest.sh) under qemu and stays in the foreground as qemu itself.
# usage: boot.sh      env: DBUS_PORT, CTL_PORT (host ports on 127.0.0.1 forwarded to the guest's D-Bus TCP listener
#                          and control server; required, pick free ones per run), BLUEZ_VM_CACHE,
#                          BLUEZ_VM_ACCEL (tcg|kvm, default tcg: KVM hangs on this kind of nested host), BZVM_DEBUG=1
# The guest console (its READY line, errors) is qemu's stdout.
set -euo pipefail
CACHE=${BLUEZ_VM_CACHE:-/var/cache/bluez-cm-vm}
HERE=$(cd "$(dirname "$0")" && pwd)
: "${DBUS_PORT:?set DBUS_PORT}" "${CTL_PORT:?set CTL_PORT}"
[ -f "$CACHE/.built" ] || { echo "boot: no guest in $CACHE; run build-guest.sh" >&2; exit 3; }
# guest-init and the control server are copied on every boot so editing them needs no rebuild.
install -m755 "$HERE/guest/guest-init" "$CACHE/root/sbin/guest-init"
install -m755 "$HERE/guest/bzvm-control" "$CACHE/root/sbin/bzvm-control"
ACCEL=${BLUEZ_VM_ACCEL:-tcg}
[ "$ACCEL" = tcg ] && ACCEL=tcg,thread=multi,tb-size=64
# --pdeathsig: qemu dies with the process that started it, even when that process is SIGKILLed.
exec setpriv --pdeathsig KILL -- qemu-system-x86_64 -accel "$ACCEL" -smp 2 -m 192 -nographic -no-reboot \
  -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 bzvm_dbus_port=55556 bzvm_ctl_port=55557 ${BZVM_DEBUG:+bzvm_debug=1}" \
  -fsdev local,id=r,path="$CACHE/root",security_model=passthrough,multidevs=remap \
  -device virtio-9p-pci,fsdev=r,mount_tag=rootfs \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$DBUS_PORT"-:55556,hostfwd=tcp:127.0.0.1:"$CTL_PORT"-:55557 \
  -device virtio-net-pci,netdev=n0
