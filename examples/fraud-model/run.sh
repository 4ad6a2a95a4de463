#!/usr/bin/env bash
# The fraud-model example, end to end: the demo's history -> the rule's
# features (`weir features`) -> LightGBM in Python -> ONNX -> the rule's
# package -> `weir backtest` against the shipped rules -> shadow on the
# stream and `weir shadow-report` -> enforce (`weir rule deploy --mode
# enforce`).
#
# Usage: examples/fraud-model/run.sh [OUT]   (default: target/fraud-model-example)
# Runs weir as $WEIR if set, else `cargo run --release -p weir --`. Builds
# its Python environment from PyPI on first use (scripts/models/venv.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$root/target/fraud-model-example}" && cd "${1:-$root/target/fraud-model-example}" && pwd)"
if [ -n "${WEIR:-}" ]; then
  weir() { "$WEIR" "$@"; }
else
  weir() { cargo run --quiet --release --manifest-path "$root/Cargo.toml" -p weir -- "$@"; }
fi
step() { printf '\n== %s\n' "$*"; }

step "Python environment (scikit-learn, LightGBM, ONNX) from PyPI"
python="$(bash "$root/scripts/models/venv.sh" | tail -n 1)"

step "Demo history: 14 days of event time, labelled"
weir demo --days 14 --out "$out/demo" > "$out/demo.log"
grep -m1 "weir demo:" "$out/demo.log"

step "The rule's package, before there is a model"
rule="$out/rule"
rm -rf "$rule" && mkdir -p "$rule"
cp -r "$here/rule/Cargo.toml" "$here/rule/rule.toml" "$here/rule/src" "$rule/"
# The crate's SDK is this checkout's.
sed -i "s|path = \"../../../sdk\"|path = \"$root/sdk\"|" "$rule/Cargo.toml"
(cd "$rule" && weir rule build)
package="$rule/target/weir"

step "Training table: the rule's features over the history"
weir features "$package/fraud-model.toml" --input "$out/demo/transactions.jsonl" \
  --labels "$out/demo/labels.csv" --out "$out/features.csv"

step "Training LightGBM on the earlier 70 % of event time, exporting ONNX"
"$python" "$here/train.py" "$out/features.csv" --out "$package/fraud-model.onnx" --split-out "$out/split.txt"
split="$(cat "$out/split.txt")"

step "Backtest on the held-out 30 %: the shipped rules, and the shipped rules with the model in shadow"
rm -rf "$out/candidate" && cp -r "$out/demo/rules" "$out/candidate"
weir rule deploy "$package/fraud-model.toml" --rules "$out/candidate"
weir backtest --baseline "$out/demo/rules" --candidate "$out/candidate" \
  --input "$out/demo/transactions.jsonl" --labels "$out/demo/labels.csv" --warm-up-until "$split" \
  --json "$out/backtest.json" --html "$out/backtest.html" > "$out/backtest.txt"
sed -n '/Scores without a threshold/,$p' "$out/backtest.txt" | sed '/^$/q'

step "Shadow: the stream through the candidate rules, the model in shadow"
rm -rf "$out/shadow"
weir run --rules "$out/candidate" --input "$out/demo/transactions.jsonl" --output "$out/shadow" > "$out/shadow.log"
weir shadow-report --decisions "$out/shadow/decisions.jsonl" --from-time "$split" \
  --labels "$out/demo/labels.csv" --json "$out/shadow-report.json" > "$out/shadow-report.txt"
head -n 12 "$out/shadow-report.txt"

step "Enforce: the model's verdicts count"
weir rule deploy "$out/candidate/fraud-model.toml" --rules "$out/candidate" --mode enforce
weir backtest --baseline "$out/demo/rules" --candidate "$out/candidate" \
  --input "$out/demo/transactions.jsonl" --labels "$out/demo/labels.csv" --warm-up-until "$split" \
  --json "$out/enforce.json" > "$out/enforce.txt"
sed -n '/Against the labels/,/^$/p' "$out/enforce.txt"
printf '\nWritten to %s: features.csv, backtest.{txt,json,html}, shadow-report.{txt,json}, enforce.{txt,json}\n' "$out"
