#!/bin/bash
# Writes a umockdev testbed of N USB sticks (8 per hub, one vfat partition each) to stdout.
#   tests/bench/gen-testbed.sh 64 > bench.umockdev
exec python3 "$(dirname "$0")/../fixtures/mkfixtures.py" bench "${1:-64}"
