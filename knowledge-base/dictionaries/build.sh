#!/bin/sh
# Regenerates knowledge-base/dictionaries/ (the speller's word lists and their licences) from pinned Debian
# packages: wdutch (OpenTaal) for nl, wamerican + wbritish (SCOWL) for en. Verifies the SHA-256 of every .deb and
# of every generated list, so the files in the repository are reproducible.
#
#   knowledge-base/dictionaries/build.sh            # fetch the .debs with `apt-get download` (Debian 12 "bookworm" sources)
#   DEB_DIR=/path knowledge-base/dictionaries/build.sh   # or use .debs already downloaded into /path
#
# Needs: apt-get (unless DEB_DIR is set), dpkg-deb, sha256sum, GNU grep and sort with a C.UTF-8 locale, zstd.
set -eu

# package version .deb-SHA-256
NL_DEB="wdutch 1:2.20.19-2 79dc0dbbd9b3e029ba84423a804c635aca87105521962f9b4c3023399c94dc35"
EN_US_DEB="wamerican 2020.12.07-2 c8f8e2b2ad0d37bfdd41f0e40f1e4c8e5f907467d768a1d3698b164e9617f0b4"
EN_GB_DEB="wbritish 2020.12.07-2 f80571f14aa987ef0d727e2077d4f2abd84adf92492af494e7de04882c53be3f"
# SHA-256 of each generated word list before compression (zstd's bytes may differ between zstd versions).
NL_LIST_SHA256="ba8c382df1b05e76b4524004771886f4bfca253845752e8c8954d8fec4348feb"
EN_LIST_SHA256="14dd5e85e6421e55e4747e9b57174fd98b27dcb0b4085d62b06e6afee0dad567"

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/knowledge-base/dictionaries"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "build.sh: $1 not found: install the Debian package $2" >&2
        exit 1
    }
}
need dpkg-deb dpkg
need sha256sum coreutils
need zstd zstd
[ -n "${DEB_DIR:-}" ] || need apt-get apt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION SHA256: the verified .deb, unpacked into $work/NAME.
fetch() {
    name=$1 version=$2 sha=$3
    file="${name}_$(echo "$version" | sed 's/^[0-9]*://')_all.deb"
    if [ -n "${DEB_DIR:-}" ]; then
        deb=$(find "$DEB_DIR" -maxdepth 1 -name "${name}_*$(echo "$version" | sed 's/^[0-9]*://')_all.deb" | head -n 1)
    else
        (cd "$work" && apt-get download "$name=$version" >/dev/null) || {
            echo "build.sh: cannot download $name=$version: add Debian 12 (bookworm) to the apt sources and" \
                "run apt-get update, or fetch $file from https://snapshot.debian.org and set DEB_DIR" >&2
            exit 1
        }
        deb=$(find "$work" -maxdepth 1 -name "${name}_*_all.deb" | head -n 1)
    fi
    [ -n "$deb" ] && [ -f "$deb" ] || { echo "build.sh: $file not found" >&2; exit 1; }
    echo "$sha  $deb" | sha256sum -c --quiet - || {
        echo "build.sh: $deb is not $name $version (SHA-256 differs)" >&2
        exit 1
    }
    dpkg-deb -x "$deb" "$work/$name"
}

# words FILE...: single words of 2-30 letters (any script, accents kept), byte-sorted, without duplicates. A word
# with apostrophes is kept without them too ("hasn't" -> "hasnt", "camera's" -> "cameras"): customers type them so.
# Lines with spaces, hyphens or digits ("Adolf Hitler", "btw-loket") are left out: the index splits a message at
# those characters, so only their parts are ever looked up.
words() {
    cat "$@" | sed "s/'//g" | LC_ALL=C.UTF-8 grep -E '^[[:alpha:]]{2,30}$' | LC_ALL=C sort -u
}

# write LANG SHA256: stdin to $out/LANG.txt.zst after checking its SHA-256.
write() {
    cat >"$work/$1.txt"
    actual=$(sha256sum "$work/$1.txt" | cut -d' ' -f1)
    if [ "$actual" != "$2" ]; then
        echo "build.sh: $1.txt has SHA-256 $actual, expected $2 (packages or tools differ)" >&2
        exit 1
    fi
    zstd -19 -q -f "$work/$1.txt" -o "$out/$1.txt.zst"
    echo "$1.txt.zst: $(wc -l <"$work/$1.txt") words, $(wc -c <"$out/$1.txt.zst") bytes"
}

mkdir -p "$out"
# shellcheck disable=SC2086 # the pins are split into their fields on purpose
fetch $NL_DEB
# shellcheck disable=SC2086
fetch $EN_US_DEB
# shellcheck disable=SC2086
fetch $EN_GB_DEB

words "$work/wdutch/usr/share/dict/dutch" | write nl "$NL_LIST_SHA256"
words "$work/wamerican/usr/share/dict/american-english" "$work/wbritish/usr/share/dict/british-english" |
    write en "$EN_LIST_SHA256"

cp "$work/wdutch/usr/share/doc/wdutch/copyright" "$out/LICENSE-nl"
# wamerican and wbritish carry the same SCOWL copyright file.
cmp -s "$work/wamerican/usr/share/doc/wamerican/copyright" "$work/wbritish/usr/share/doc/wbritish/copyright" || {
    echo "build.sh: wamerican and wbritish copyright files differ: keep both" >&2
    exit 1
}
cp "$work/wamerican/usr/share/doc/wamerican/copyright" "$out/LICENSE-en"
