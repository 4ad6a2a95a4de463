#!/bin/bash
# A longer fuzzing run than CI's: WEIR_FUZZ_SECS per target (default 300).
# An input that panics is saved under target/fuzz-failures/; fix the cause
# and move the file into fuzz/corpus/<target>/ as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEIR_FUZZ_SECS="${WEIR_FUZZ_SECS:-300}"
exec cargo test --release -p weir --test weir fuzz:: -- --nocapture --test-threads 1
