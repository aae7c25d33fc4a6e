#!/usr/bin/env bash
# Builds the Debian package of ipipd from this source tree: ipipd_<version>_<arch>.deb, with a binary
# that links the Swift runtime statically (it needs no Swift on the gateway box: only Debian's
# libpcap, libnet and what they pull), the systemd unit under /lib/systemd/system, ipipd(8) and
# ipipd.yaml(5), the example configs under /usr/share/doc/ipipd/examples, and /etc/ipipd/ipipd.yaml
# as a conffile (kept as it is on upgrade). Needs root only to install its build tools (dpkg-dev).
#
# Usage: scripts/package.sh [--output DIR] [--version VERSION] [--lintian]
#   --output DIR       where the .deb goes (default: the repository's root); its path is printed last
#   --version VERSION  the package's version (default: the one `ipipd version` prints)
#   --lintian          run lintian on the package and print what it finds
set -euo pipefail
cd "$(dirname "$0")/.."

output=$(pwd) version="" lintian=no
while (($#)); do
    case $1 in
        --output) output=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        --lintian) lintian=yes; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done

tools=(dpkg-dev binutils)
[[ $lintian == yes ]] && tools+=(lintian)
missing=()
for package in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/install-deps.sh >&2

# The Swift runtime and Foundation linked in, and no RUNPATH: the binary runs where no toolchain is.
scratch=.build-static
swift build -c release --static-swift-stdlib --disable-local-rpath --product ipipd --scratch-path "$scratch" 2>&1 | tail -1 >&2
binary=$scratch/release/ipipd
[[ -n $version ]] || version=$("$binary" version | awk '{print $2}')
arch=$(dpkg --print-architecture)

work=$(mktemp -d /tmp/ipipd-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/ipipd_${version}_$arch
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/lib/systemd/system" "$root/etc/ipipd" \
    "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/ipipd/examples" "$root/usr/share/lintian/overrides"
install -m 0755 "$binary" "$root/usr/sbin/ipipd"
strip --strip-unneeded "$root/usr/sbin/ipipd"
sed -e "s|@SBINDIR@|/usr/sbin|g" -e "s|@SYSCONFDIR@|/etc|g" packaging/ipipd.service > "$root/lib/systemd/system/ipipd.service"
chmod 0644 "$root/lib/systemd/system/ipipd.service"
{ echo "# ipipd configuration: describe this gateway here, then: ipipd check && ipipd plan && systemctl enable --now ipipd"
  echo "# (this example is machine A of the seed's scenario; /usr/share/doc/ipipd/examples/ holds machine B and more)"
  cat config/machine-a.yaml; } > "$root/etc/ipipd/ipipd.yaml"
chmod 0644 "$root/etc/ipipd/ipipd.yaml"
gzip -9n -c packaging/man/ipipd.8 > "$root/usr/share/man/man8/ipipd.8.gz"
gzip -9n -c packaging/man/ipipd.yaml.5 > "$root/usr/share/man/man5/ipipd.yaml.5.gz"
for example in config/*.yaml config/*.conf; do
    [[ $example == config/invalid-example.yaml ]] && continue
    install -m 0644 "$example" "$root/usr/share/doc/ipipd/examples/"
done
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/ipipd/copyright"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/ipipd"
printf 'ipipd (%s) unstable; urgency=medium\n\n  * Built from the ipipd source tree by scripts/package.sh.\n\n -- ipipd developers <ipipd@example.org>  %s\n' \
    "$version" "$(date -R -u)" | gzip -9n > "$root/usr/share/doc/ipipd/changelog.gz"
chmod 0644 "$root/usr/share/man/man8/ipipd.8.gz" "$root/usr/share/man/man5/ipipd.yaml.5.gz" "$root/usr/share/doc/ipipd/changelog.gz"

# The libraries the binary loads, as Debian packages with versions (dpkg-shlibdeps reads a source
# package's debian/control: a minimal one in the work directory).
mkdir -p "$work/shlibs/debian"
printf 'Source: ipipd\n\nPackage: ipipd\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e "$root/usr/sbin/ipipd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "dpkg-shlibdeps found no dependencies for the binary" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    packaging/debian/control.in > "$root/DEBIAN/control"
echo /etc/ipipd/ipipd.yaml > "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$output"
deb=$output/ipipd_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
if [[ $lintian == yes ]]; then
    echo "lintian:" >&2
    lintian --tag-display-limit 0 --info "$deb" >&2 || true
fi
echo "$deb"
