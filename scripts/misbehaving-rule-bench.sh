#!/bin/bash
# Run after `cargo build --release -p weir` (which also builds the hostile test rule).
# Throughput of the embedded pipeline with the shipped rules alone and with one
# misbehaving rule added, side by side, rounds interleaved.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${WEIR_BIN:-$ROOT/target/release/weir}
H=$ROOT/target/wasm-rules/wasm32-wasip2/rule/hostile.wasm
D=${TMPDIR:-/tmp}/weir-misbehaving; rm -rf $D; mkdir -p $D
$W demo --out $D/demo --transactions ${TRANSACTIONS:-100000} --accounts 5000 >/dev/null 2>&1
for v in clean loop slow error hoard huge alternate; do cp -r $D/demo/rules $D/$v; done
for v in loop slow error hoard huge alternate; do cp $H $D/$v/; done
printf '[rule]\nid = "looper"\nversion = "1"\ncomponent = "hostile.wasm"\n[params]\nbehaviour = "loop"\n' > $D/loop/looper.toml
printf '[rule]\nid = "slowpoke"\nversion = "1"\ncomponent = "hostile.wasm"\n[limits]\nfuel = 5000000\n[params]\nbehaviour = "loop"\n' > $D/slow/slowpoke.toml
printf '[rule]\nid = "grumpy"\nversion = "1"\ncomponent = "hostile.wasm"\n[params]\nbehaviour = "error"\n' > $D/error/grumpy.toml
printf '[rule]\nid = "hoarder"\nversion = "1"\ncomponent = "hostile.wasm"\n[params]\nbehaviour = "hoard"\n' > $D/hoard/hoarder.toml
printf '[rule]\nid = "chatty"\nversion = "1"\ncomponent = "hostile.wasm"\n[limits]\nfuel = 5000000\nmemory_mib = 128\n[params]\nbehaviour = "huge-message"\n' > $D/huge/chatty.toml
printf '[rule]\nid = "alternator"\nversion = "1"\ncomponent = "hostile.wasm"\n[limits]\nfuel = 5000000\n[params]\nbehaviour = "every-other:loop"\n' > $D/alternate/alternator.toml
for round in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-clean loop slow error hoard huge alternate}; do
    rm -rf $D/out-$v
    /usr/bin/time -f "%M" -o $D/rss-$v $W run --input $D/demo/transactions.jsonl --rules $D/$v --output $D/out-$v > $D/log-$v 2>$D/err-$v
    t=$(grep -o 'Throughput: [0-9]* records/s' $D/log-$v | grep -o '[0-9]*')
    warns=$(grep -c WARN $D/err-$v || true)
    echo "round $round $v $t records/s rss_kib $(cat $D/rss-$v) warn_lines $warns store_bytes $(stat -c %s $D/out-$v/state.redb)"
  done
done
