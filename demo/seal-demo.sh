#!/usr/bin/env bash
# seal-demo.sh [--boot] [--check]: the whole bootseal job on an embedded default, nothing prepared
# by hand.
#  0. checks for every tool it needs before building anything: as root it installs the missing
#     Debian packages (apt-get update first); otherwise it prints the one apt-get line to run and
#     exits 2. --check only checks (exit 0 when all is there, 2 with the apt-get line when not).
#  1. builds a small bootc-like image (5 layers) from Debian packages: the kernel of
#     linux-image-amd64 with some of its modules and a busybox initramfs, systemd-boot-efi's stub
#     and boot loader, an os-release and a kargs.d file;
#  2. starts a throw-away docker-registry on 127.0.0.1 and pushes the image with skopeo;
#  3. creates a Secure Boot key set with `bootseal keys create` (PK, KEK, db + .auth updates);
#  4. `bootseal seal --enroll-keys`s registry -> registry (the .auth files go into the image where
#     `bootc install` picks them up), `bootseal verify`s the result and prints it;
#  5. with --boot, the first boot of a blank machine: OVMF with an empty variable store (setup
#     mode) boots an ESP laid out as `bootc install` writes it from the sealed image; systemd-boot
#     enrolls PK/KEK/db, resets, and the sealed UKI boots with Secure Boot enforced (QEMU, TCG);
#     then a key rotation: a second db certificate appended with `bootseal keys auth` is applied
#     from Linux (efivarfs) on the enrolled machine and a UKI signed by it boots.
# Needs Rust (cargo) unless BOOTSEAL names a built binary; every Debian package it needs is
# installed by step 0. No PyPI package is needed.
set -euo pipefail

BOOT=0
CHECK_ONLY=0
for a in "$@"; do
  case "$a" in
    --boot) BOOT=1 ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "seal-demo: unknown argument $a" >&2; exit 2 ;;
  esac
done

# --- 0. prerequisites, before anything is built -------------------------------------------
missing=()   # what is missing, for the message
packages=()  # the Debian packages that provide it, each once
note_missing() {
  missing+=("$1 (Debian package $2)")
  case " ${packages[*]-} " in *" $2 "*) ;; *) packages+=("$2") ;; esac
}
need_cmd() { command -v "$1" >/dev/null 2>&1 || note_missing "$1" "$2"; }
need_file() { [ -e "$1" ] || note_missing "$1" "$2"; }
need_deb() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ] ||
    note_missing "$1" "$1"
}
check_prerequisites() {
  missing=(); packages=(); need_update=0; need_rust=0
  if [ -z "${BOOTSEAL:-}" ]; then
    command -v cargo >/dev/null 2>&1 || need_rust=1
    need_cmd cc build-essential
    need_cmd pkg-config pkg-config
    need_deb libssl-dev
  fi
  need_cmd umoci umoci
  need_cmd skopeo skopeo
  need_cmd docker-registry docker-registry
  need_cmd curl curl
  need_cmd openssl openssl
  need_cmd cpio cpio
  need_cmd gzip gzip
  need_cmd zstd zstd
  if [ "$BOOT" = 1 ]; then
    need_cmd qemu-system-x86_64 qemu-system-x86
    need_cmd mkfs.vfat dosfstools
    need_cmd mmd mtools
    need_cmd mcopy mtools
    need_file /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ovmf
    need_file /usr/share/OVMF/OVMF_VARS_4M.fd ovmf
  fi
  # `apt-get download` of the kernel, stub and busybox needs the package lists.
  apt-cache show linux-image-amd64 systemd-boot-efi busybox-static >/dev/null 2>&1 || need_update=1
}
check_prerequisites
if [ ${#packages[@]} -gt 0 ] || [ "$need_update" = 1 ]; then
  if [ "$(id -u)" = 0 ] && [ "$CHECK_ONLY" = 0 ]; then
    printf '\n== installing %s\n' "${packages[*]-package lists}"
    apt-get update -q
    if [ ${#packages[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
    fi
    check_prerequisites
    if [ ${#packages[@]} -gt 0 ] || [ "$need_update" = 1 ]; then
      for m in "${missing[@]}"; do echo "seal-demo: still missing after apt-get install: $m" >&2; done
      [ "$need_update" = 1 ] && echo "seal-demo: apt still has no package lists" >&2
      exit 1
    fi
  else
    for m in "${missing[@]}"; do echo "seal-demo: missing: $m" >&2; done
    [ "$need_update" = 1 ] && echo "seal-demo: apt has no package lists (linux-image-amd64 etc.)" >&2
    echo "seal-demo: run as root, then run the demo again:" >&2
    if [ ${#packages[@]} -gt 0 ]; then
      echo "apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
    else
      echo "apt-get update"
    fi
    exit 2
  fi
fi
if [ -n "${BOOTSEAL:-}" ] && [ ! -x "$BOOTSEAL" ]; then
  echo "seal-demo: BOOTSEAL=$BOOTSEAL is not an executable file" >&2
  exit 2
fi
if [ "$need_rust" = 1 ]; then
  echo "seal-demo: cargo not found: install Rust >= 1.88 (https://rustup.rs), or set BOOTSEAL to a built bootseal" >&2
  exit 2
fi
[ "$CHECK_ONLY" = 1 ] && { echo "seal-demo: all prerequisites are installed"; exit 0; }

top=$(cd "$(dirname "$0")/.." && pwd)
work=${DEMO_WORK:-$(mktemp -d /tmp/bootseal-demo.XXXXXX)}
mkdir -p "$work"
say() { printf '\n== %s\n' "$*"; }

if [ -z "${BOOTSEAL:-}" ]; then
  say "building bootseal (release)"
  (cd "$top" && cargo build --release --quiet)
  BOOTSEAL=${CARGO_TARGET_DIR:-$top/target}/release/bootseal
fi

say "downloading Debian packages into $work/debs"
mkdir -p "$work/debs"
cd "$work/debs"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "seal-demo: apt cannot resolve linux-image-amd64's kernel package" >&2; exit 1; }
ls "$kpkg"_*.deb >/dev/null 2>&1 || apt-get download -q "$kpkg"
ls systemd-boot-efi_*.deb >/dev/null 2>&1 || apt-get download -q systemd-boot-efi
ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download -q busybox-static

say "assembling the root filesystem layers"
x="$work/extract"; rm -rf "$x"; mkdir -p "$x"
for d in *.deb; do dpkg-deb -x "$d" "$x"; done
kver=$(ls "$x/lib/modules" | head -1)
L="$work/layers"; rm -rf "$L"; mkdir -p "$L"/{1,2,3,4,5}
# layer 1: the skeleton and a userland
mkdir -p "$L/1"/{boot,sysroot,run,tmp,var,etc,proc,sys,dev,usr/bin,usr/lib/bootc/kargs.d}
cp "$x/bin/busybox" "$L/1/usr/bin/busybox"
ln -s usr/bin "$L/1/bin"
printf 'NAME="bootseal demo"\nID=bootseal-demo\nVERSION_ID=1\nPRETTY_NAME="bootseal demo 1"\n' > "$L/1/usr/lib/os-release"
ln -s ../usr/lib/os-release "$L/1/etc/os-release"
# layer 2: kernel modules (a subset, to keep the demo small)
mkdir -p "$L/2/usr/lib/modules/$kver/kernel"
cp -a "$x/lib/modules/$kver/kernel/fs" "$L/2/usr/lib/modules/$kver/kernel/"
cp -a "$x/lib/modules/$kver"/modules.* "$L/2/usr/lib/modules/$kver/" 2>/dev/null || true
# layer 3: the kernel and an initramfs that prints the command line
mkdir -p "$L/3/usr/lib/modules/$kver"
cp "$x/boot/vmlinuz-$kver" "$L/3/usr/lib/modules/$kver/vmlinuz"
ird="$work/initrd"; rm -rf "$ird"; mkdir -p "$ird/bin"
cp "$x/bin/busybox" "$ird/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox echo "bootseal-demo: /proc/cmdline follows"\n/bin/busybox mount -t proc proc /proc 2>/dev/null; /bin/busybox cat /proc/cmdline\n/bin/busybox poweroff -f\n' > "$ird/init"
chmod +x "$ird/init"; mkdir -p "$ird/proc"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9n) > "$L/3/usr/lib/modules/$kver/initramfs.img"
# layer 4: systemd-boot and the UKI stub
mkdir -p "$L/4/usr/lib/systemd/boot/efi"
cp "$x/usr/lib/systemd/boot/efi/"{linuxx64.efi.stub,systemd-bootx64.efi} "$L/4/usr/lib/systemd/boot/efi/"
# layer 5: kernel arguments the image asks for
mkdir -p "$L/5/usr/lib/bootc/kargs.d"
printf 'kargs = ["console=ttyS0", "panic=-1"]\nmatch-architectures = ["x86_64"]\n' > "$L/5/usr/lib/bootc/kargs.d/10-console.toml"

say "building the OCI image with umoci"
lay="$work/layout"; rm -rf "$lay"
umoci init --layout "$lay" >/dev/null
umoci new --image "$lay:base" >/dev/null
# umoci 0.4.7's `insert` writes tars without their end (GNU tar: "Unexpected EOF"), which
# bootseal rightly refuses; unpack -> copy -> repack writes complete layers.
for i in 1 2 3 4 5; do
  rm -rf "$work/bundle"
  umoci unpack --rootless --image "$lay:base" "$work/bundle" >/dev/null
  cp -a "$L/$i/." "$work/bundle/rootfs/"
  umoci repack --image "$lay:base" --history.comment "demo layer $i" "$work/bundle" >/dev/null
done
rm -rf "$work/bundle"
umoci config --image "$lay:base" --os linux --architecture amd64 \
  --config.label containers.bootc=1 --config.cmd /usr/bin/busybox >/dev/null

say "starting a local registry"
reg="$work/registry"; rm -rf "$reg"; mkdir -p "$reg/data"
cat > "$reg/config.yml" <<YAML
version: 0.1
log: { level: info }
storage: { filesystem: { rootdirectory: $reg/data } }
http: { addr: 127.0.0.1:0, secret: demo-only }
YAML
docker-registry serve "$reg/config.yml" > "$reg/log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$reg/log" | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$reg/log"; echo "registry did not start" >&2; exit 1; }
R=127.0.0.1:$port
skopeo copy -q --dest-tls-verify=false "oci:$lay:base" "docker://$R/demo/os:base"
echo "pushed docker://$R/demo/os:base"

say "creating Secure Boot keys (PK, KEK, db) with bootseal keys create"
rm -rf "$work/keys"
"$BOOTSEAL" keys create --subject-prefix "bootseal demo" "$work/keys" >/dev/null
ls "$work/keys"

say "sealing"
"$BOOTSEAL" seal --tls-verify=false --from "docker://$R/demo/os:base" --to "docker://$R/demo/os:sealed" \
  --key "$work/keys/db.key" --cert "$work/keys/db.crt" --enroll-keys "$work/keys" --allow-section-overlap \
  --digestfile "$work/sealed.digest"

say "verifying"
"$BOOTSEAL" verify --tls-verify=false --cert "$work/keys/db.crt" "docker://$R/demo/os@$(cat "$work/sealed.digest")"

"$BOOTSEAL" verify --tls-verify=false --cert "$work/keys/db.crt" --save-uki "$work/sealed-uki.efi" \
  "docker://$R/demo/os:sealed" >/dev/null

# boot_esp ESP PATTERN: boot ESP with the variable store $work/vars.fd (kept: enrollment and
# updates persist) until the serial log matches PATTERN or the firmware refuses an image.
# No -no-reboot: systemd-boot resets the machine after enrolling.
boot_esp() {
  : > "$work/serial.log"
  qemu-system-x86_64 -machine q35,smm=on -accel tcg -m 1024 -smp 2 \
    -global driver=cfi.pflash01,property=secure,value=on \
    -drive if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd,readonly=on \
    -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd" \
    -drive "if=none,id=esp,format=raw,file=$1" -device virtio-blk-pci,drive=esp,bootindex=1 \
    -nic none -display none -monitor none -serial "file:$work/serial.log" &
  qpid=$!
  for _ in $(seq 600); do
    grep -q "$2" "$work/serial.log" 2>/dev/null && break
    grep -qE "Access Denied|Security Violation" "$work/serial.log" 2>/dev/null && break
    kill -0 $qpid 2>/dev/null || break
    sleep 0.5
  done
  sleep 1
  kill $qpid 2>/dev/null || true; wait $qpid 2>/dev/null || true
}
# esp_with IMAGE SRC:DEST...: a FAT ESP holding the files.
esp_with() {
  local esp=$1 bytes=0 a; shift
  for a in "$@"; do bytes=$((bytes + $(stat -c %s "${a%%:*}"))); done
  rm -f "$esp"; mkfs.vfat -C -n ESP "$esp" $((bytes / 1024 * 5 / 4 + 8192)) >/dev/null
  for a in "$@"; do
    local d="" p; IFS=/ read -ra parts <<<"$(dirname "${a#*:}")"
    for p in "${parts[@]}"; do [ "$p" = . ] && continue; d="$d/$p"; MTOOLS_SKIP_CHECK=1 mmd -i "$esp" "::$d" 2>/dev/null || true; done
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$esp" "${a%%:*}" "::/${a#*:}"
  done
}

if [ "$BOOT" = 1 ]; then
  say "first boot of a blank machine: OVMF in setup mode, keys enrolled by systemd-boot (QEMU, TCG)"
  # What `bootc install` puts on the ESP, taken from the sealed image's new layer.
  rm -rf "$work/sealed-dir" "$work/sealed-top"; mkdir -p "$work/sealed-top"
  skopeo copy -q --src-tls-verify=false "docker://$R/demo/os:sealed" "dir:$work/sealed-dir"
  for blob in "$work/sealed-dir"/*; do   # the new layer is the one holding these paths
    tar -xf "$blob" -C "$work/sealed-top" usr/lib/bootc/install/secureboot-keys \
      usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed 2>/dev/null || true
  done
  keys="$work/sealed-top/usr/lib/bootc/install/secureboot-keys/auto"
  printf 'timeout 0\nsecure-boot-enroll force\n' > "$work/loader.conf"
  esp="$work/esp.img"; rm -f "$esp"
  mkfs.vfat -C -n ESP "$esp" $(( $(stat -c %s "$work/sealed-uki.efi") / 1024 * 5 / 4 + 8192 )) >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader ::/loader/keys ::/loader/keys/auto
  mcopy -i "$esp" "$work/sealed-top/usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$esp" "$work/sealed-uki.efi" ::/EFI/Linux/sealed.efi
  mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
  mcopy -i "$esp" "$keys/PK.auth" "$keys/KEK.auth" "$keys/db.auth" ::/loader/keys/auto/
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"   # empty: setup mode
  boot_esp "$esp" "secureboot: Secure boot"
  log=$(tr -d '\r' < "$work/serial.log")
  grep -m1 -o "Enrolling secure boot keys from directory: [^ ]*" <<<"$log" || true
  sb=$(grep -m1 "secureboot: Secure boot" <<<"$log" || true)
  line=$(grep -m1 "Command line: " <<<"$log" || true)
  if [ -n "$line" ]; then
    echo "the kernel reports: ${sb#*] }"
    echo "firmware accepted the UKI; the kernel says: $line"
  else
    echo "the UKI did not boot; serial log: $work/serial.log" >&2; exit 1
  fi

  say "key rotation: a second db key appended with bootseal keys auth, applied from Linux (efivarfs)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=bootseal demo db 2" \
    -keyout "$work/db2.key" -out "$work/db2.crt" 2>/dev/null
  "$BOOTSEAL" keys auth --var db --append --signer-key "$work/keys/KEK.key" \
    --signer-cert "$work/keys/KEK.crt" "$work/db2.crt" -o "$work/db2.auth"
  # A maintenance UKI (signed with the first db key) whose initramfs writes the update the way
  # `efi-updatevar -a -f db2.auth db` does: attributes (NV|BS|RT|time-auth|append) + .auth,
  # in one write to efivarfs, after clearing the immutable flag efivarfs puts on db.
  mird="$work/rotate-initrd"; rm -rf "$mird"; mkdir -p "$mird/bin" "$mird/proc" "$mird/sys"
  cp "$x/bin/busybox" "$mird/bin/busybox"
  cp "$x/lib/modules/$kver/kernel/fs/efivarfs/efivarfs.ko" "$mird/efivarfs.ko"
  cp /usr/bin/chattr "$mird/bin/chattr"
  for lib in $(ldd /usr/bin/chattr | grep -o '/[^ ]*'); do cp --parents -L "$lib" "$mird"; done
  { printf '\x67\x00\x00\x00'; cat "$work/db2.auth"; } > "$mird/db-append.var"
  v=/sys/firmware/efi/efivars/db-d719b2cb-3d3a-4596-a3bc-dad00e67656f
  printf '%s\n' '#!/bin/busybox sh' '/bin/busybox insmod /efivarfs.ko' \
    '/bin/busybox mount -t sysfs sysfs /sys' \
    '/bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars' \
    "/bin/chattr -i $v" \
    "if /bin/busybox dd if=/db-append.var of=$v bs=1M conv=notrunc 2>/dev/null; then /bin/busybox echo 'bootseal-demo: db update applied'; else /bin/busybox echo 'bootseal-demo: db update FAILED'; fi" \
    '/bin/busybox poweroff -f' > "$mird/init"
  chmod +x "$mird/init"
  (cd "$mird" && find . | cpio -o -H newc --quiet | gzip -9n) > "$work/rotate-initrd.img"
  "$BOOTSEAL" build-uki --linux "$x/boot/vmlinuz-$kver" --initrd "$work/rotate-initrd.img" \
    --os-release "$L/1/usr/lib/os-release" --stub "$x/usr/lib/systemd/boot/efi/linuxx64.efi.stub" \
    --allow-section-overlap --cmdline "console=ttyS0 panic=-1" -o "$work/rotate.efi"
  "$BOOTSEAL" sign --key "$work/keys/db.key" --cert "$work/keys/db.crt" "$work/rotate.efi" -o "$work/rotate.signed.efi"
  # A UKI signed only by the new key (the demo image's initramfs: prints the command line).
  "$BOOTSEAL" build-uki --linux "$x/boot/vmlinuz-$kver" --initrd "$L/3/usr/lib/modules/$kver/initramfs.img" \
    --os-release "$L/1/usr/lib/os-release" --stub "$x/usr/lib/systemd/boot/efi/linuxx64.efi.stub" \
    --allow-section-overlap --cmdline "console=ttyS0 panic=-1 bootseal-demo=db2" -o "$work/db2-uki.efi"
  "$BOOTSEAL" sign --key "$work/db2.key" --cert "$work/db2.crt" "$work/db2-uki.efi" -o "$work/db2-uki.signed.efi"
  printf 'timeout 0\n' > "$work/loader2.conf"
  sdboot="$work/sealed-top/usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed"
  esp_with "$work/esp2.img" "$sdboot:EFI/BOOT/BOOTX64.EFI" "$work/loader2.conf:loader/loader.conf" \
    "$work/db2-uki.signed.efi:EFI/Linux/db2.efi"
  boot_esp "$work/esp2.img" "Command line: "
  if grep -qE "Access Denied|Security Violation" "$work/serial.log"; then
    echo "before the update, the firmware refuses the UKI signed by the new key"
  else
    echo "the UKI signed by the new key was not refused before the update" >&2; exit 1
  fi
  esp_with "$work/esp3.img" "$sdboot:EFI/BOOT/BOOTX64.EFI" "$work/loader2.conf:loader/loader.conf" \
    "$work/rotate.signed.efi:EFI/Linux/rotate.efi"
  boot_esp "$work/esp3.img" "bootseal-demo: db update"
  tr -d '\r' < "$work/serial.log" | grep -m1 "bootseal-demo: db update applied" || {
    echo "the db update was not applied; serial log: $work/serial.log" >&2; exit 1; }
  boot_esp "$work/esp2.img" "Command line: "
  line=$(tr -d '\r' < "$work/serial.log" | grep -m1 "Command line: " || true)
  if [ -n "$line" ]; then echo "after the update, the UKI signed by the new key boots: $line"; else
    echo "the UKI signed by the new key did not boot after the update; serial log: $work/serial.log" >&2; exit 1; fi
fi
say "done; work files are in $work"
