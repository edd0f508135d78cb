#!/usr/bin/env bash
# Run every fuzz target for a few seconds (CI): ./run_short.sh [seconds-per-target]
# Uses atheris when importable, else a random-bytes loop (SOURCEIP_FUZZ_NO_ATHERIS=1 forces it).
# Longer runs: see docs/clientip.md.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-3}"
for target in fuzz_addr.py fuzz_headers.py fuzz_proxyproto.py; do
    echo "== $target (${SECONDS_PER_TARGET}s)"
    log="$(mktemp)"
    if ! "${PYTHON:-python3}" "$target" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
            -print_final_stats=0 >"$log" 2>&1; then
        tail -n 40 "$log"
        rm -f "$log"
        echo "FAILED: $target" >&2
        exit 1
    fi
    grep -E "^Done|random-bytes" "$log" || tail -n 1 "$log"
    rm -f "$log"
done
