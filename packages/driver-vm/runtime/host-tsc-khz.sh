#!/usr/bin/env bash
# host-tsc-khz.sh: prints the host's TSC frequency in kHz (an integer), or exits 1 if unknown.
#
# Under QEMU TCG the guest's TSC is the host's TSC, but the guest cannot calibrate it: microvm has
# no HPET or ACPI PM timer, and the PIT calibration fails whenever the host is busy, after which
# the kernel hangs at "tsc: Marking TSC unstable due to could not calculate TSC khz" (reproduced
# 3/3 with two busy host cores). Append to the kernel command line:
#     tsc_early_khz=<this value> tsc=reliable
# tsc_early_khz skips the calibration; tsc=reliable keeps the (host-synchronised) TSC as the
# guest clocksource instead of refined-jiffies, so the guest clock keeps real time under load.
# Sources, best first: the host kernel's own calibration in the kernel log, then /proc/cpuinfo.
set -euo pipefail

mhz=
if log=$(dmesg 2>/dev/null); then
  for pattern in 'Refined TSC clocksource calibration: \([0-9.]*\) MHz' 'tsc: Detected \([0-9.]*\) MHz TSC' \
    'tsc: Detected \([0-9.]*\) MHz processor'; do
    mhz=$(printf '%s\n' "$log" | sed -n "s/.*$pattern.*/\\1/p" | tail -1)
    [ -z "$mhz" ] || break
  done
fi
if [ -z "$mhz" ] && grep -qw constant_tsc /proc/cpuinfo 2>/dev/null; then
  mhz=$(awk -F': *' '$1 ~ /^cpu MHz/ {print $2; exit}' /proc/cpuinfo)
fi
[ -n "$mhz" ] || exit 1
awk -v m="$mhz" 'BEGIN { printf "%d\n", m * 1000 + 0.5 }'
