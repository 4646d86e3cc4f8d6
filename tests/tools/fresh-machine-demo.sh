#!/usr/bin/env bash
# fresh-machine-demo.sh ROOTDIR: README's first command on a machine that has nothing but Debian's
# minimal base and Rust. Not part of `cargo test` (it needs root, debootstrap and ~1 GB of
# downloads); it is how issue 12's "fresh machine" claim was checked.
#
#  1. debootstrap --variant=minbase bookworm into ROOTDIR (no package lists, no skopeo, no
#     compiler, no OVMF, ...); this host's rustup toolchain is bind-mounted at /root/.rustup and
#     /root/.cargo (the demo's "has only Rust");
#  2. a fresh `git clone` of this checkout inside it;
#  3. as an unprivileged user: `demo/seal-demo.sh --boot` must exit 2 within seconds, printing the
#     one apt-get line;
#  4. as root: `demo/seal-demo.sh --boot` must install what is missing itself and end with the
#     sealed UKI booting (its own checks: Secure Boot enforced, the sealed composefs= seen).
# Output: ROOTDIR/../{nonroot,root}.log. Exit 0 when both behave.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
root=$(realpath -m "${1:?usage: fresh-machine-demo.sh ROOTDIR}")
logs=$(dirname "$root")
src=$(cd "$(dirname "$0")/../.." && pwd)

if [ ! -x "$root/bin/bash" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

mounted=()
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounted=("$root$2" "${mounted[@]}"); }
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" || true; done; }
trap cleanup EXIT
mount -t proc proc "$root/proc" && mounted=("$root/proc")
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
bind "$HOME/.rustup" /root/.rustup
bind "$HOME/.cargo" /root/.cargo

rm -rf "$root/root/bootseal"
git clone -q "$src" "$root/root/bootseal"
chroot "$root" sh -c 'id demo >/dev/null 2>&1 || useradd -m demo'
chroot "$root" sh -c 'cp -r /root/bootseal /home/demo/bootseal && chown -R demo /home/demo/bootseal'

path=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
start=$SECONDS
set +e
chroot --userspec=demo:demo "$root" /usr/bin/env -i HOME=/home/demo PATH="$path" \
  bash -c 'cd /home/demo/bootseal && demo/seal-demo.sh --boot' >"$logs/nonroot.log" 2>&1
nonroot=$?
set -e
echo "as a user: exit $nonroot after $((SECONDS - start)) s; its output:"
cat "$logs/nonroot.log"
[ "$nonroot" = 2 ] && grep -q '^apt-get update && apt-get install -y --no-install-recommends ' "$logs/nonroot.log" ||
  { echo "FAIL: the unprivileged run must exit 2 with the apt-get line" >&2; exit 1; }

start=$SECONDS
set +e
chroot "$root" /usr/bin/env -i HOME=/root PATH="$path" TERM=dumb \
  bash -c 'cd /root/bootseal && demo/seal-demo.sh --boot' >"$logs/root.log" 2>&1
status=$?
set -e
echo "as root: exit $status after $((SECONDS - start)) s; the end of its output:"
tail -n 40 "$logs/root.log"
[ "$status" = 0 ] || { echo "FAIL: the root run failed" >&2; exit 1; }
echo "fresh-machine demo: OK"
