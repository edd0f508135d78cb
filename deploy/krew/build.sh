#!/bin/sh
# Build the archive the krew manifest points at and print its sha256 (put it in sourceip.yaml).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/kubectl-sourceip.tar.gz"}
tmp=$(mktemp -d)
cp "$here/kubectl-sourceip" "$tmp/"
cp "$here/../../LICENSE" "$tmp/"
tar -C "$tmp" -czf "$out" kubectl-sourceip LICENSE
rm -rf "$tmp"
sha256sum "$out"
