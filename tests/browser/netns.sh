#!/bin/sh
# Runs a command in a private network namespace that has loopback plus one non-loopback
# interface (an ifb device holding 10.203.0.1), with nothing behind it: Firefox gathers no ICE
# candidate on a loopback interface, and this gives it one without any traffic leaving the
# namespace. Needs root (or an unprivileged user namespace) and the ifb kernel module.
set -eu
exec unshare -n sh -c '
  ip link set lo up
  ip link add ifb9 type ifb
  ip link set ifb9 up
  ip addr add 10.203.0.1/24 dev ifb9
  ip route add default dev ifb9
  exec "$@"
' netns "$@"
