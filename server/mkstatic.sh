#!/bin/sh
# mkstatic.sh OUT CC OBJCOPY AR ARCHIVE... - libmxd.a as one object whose
# only global symbols are mxd_* (the rest of mxd is internal, and names
# such as config_init or log_begin must not clash with a program's own).
set -eu
out=$1 cc=$2 objcopy=$3 ar=$4
shift 4
tmp=$out.o
"$cc" -r -nostdlib -o "$tmp" -Wl,--whole-archive "$@" -Wl,--no-whole-archive
"$objcopy" --wildcard --keep-global-symbol='mxd_*' "$tmp"
rm -f "$out"
"$ar" rcs "$out" "$tmp"
rm -f "$tmp"
