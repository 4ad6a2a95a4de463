#!/bin/bash
# The backtest's HTML report, opened in a real headless browser (Chromium):
# a screenshot is taken, the DOM is read back, and any message the page
# logs (a script error, a failed load) fails the check. CI runs it after
# the tests; it needs the `chromium` package (Debian: apt-get install chromium).
#
#   scripts/check-report.sh [WEIR_BINARY]     # default: target/debug/weir
set -euo pipefail
cd "$(dirname "$0")/.."
weir="${1:-target/debug/weir}"
out="${WEIR_REPORT_DIR:-target/report-check}"
rm -rf "$out" && mkdir -p "$out"

"$weir" demo --out "$out/demo" --transactions 5000 > /dev/null
cp -r "$out/demo/rules" "$out/candidate"
sed -i 's/^max_count = 10$/max_count = 6/' "$out/candidate/velocity.toml"
"$weir" backtest --baseline "$out/demo/rules" --candidate "$out/candidate" \
    --input "$out/demo/transactions.jsonl" --labels "$out/demo/labels.csv" \
    --html "$out/report.html" > "$out/backtest.txt"

page="file://$(realpath "$out/report.html")"
browser=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0)
timeout 120 "${browser[@]}" --window-size=1280,2600 --screenshot="$out/report.png" "$page" \
    > /dev/null 2> "$out/chromium.log"
timeout 120 "${browser[@]}" --dump-dom "$page" > "$out/dom.html" 2>> "$out/chromium.log"

# The page's own messages: console output and failed loads.
if grep -E 'CONSOLE|Uncaught|net::ERR_|Refused to' "$out/chromium.log"; then
    echo "report check: the page logged the errors above" >&2
    exit 1
fi
size=$(stat -c %s "$out/report.png")
[ "$size" -gt 20000 ] || { echo "report check: the screenshot is only $size bytes" >&2; exit 1; }
for expected in '<svg' 'Changed decisions' 'Against the labels' 'velocity'; do
    grep -q "$expected" "$out/dom.html" || { echo "report check: the rendered page lacks '$expected'" >&2; exit 1; }
done
echo "report check: $out/report.png ($size bytes), the page logged nothing"
