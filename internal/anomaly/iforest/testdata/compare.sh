#!/bin/sh
# compare.sh DATA.csv [REPEATS] — scikit-learn's IsolationForest and ours on
# the same file, back to back, REPEATS times (default 5), then the medians.
#
# Make the data first (it is generated, not committed):
#   /usr/bin/python3 ../shared/tools/iforest-baseline make /tmp/if.csv
#   internal/anomaly/iforest/testdata/compare.sh /tmp/if.csv 5
#
# Each round runs `iforest-baseline score` and then TestBaseline, which fits,
# scores and times as the Python tool does, its batch and single-row figures
# being medians of 9 passes within the round (see baseline_test.go). The
# machine is shared, so rounds vary; the medians over rounds and the median
# of the per-round ratios are the figures to quote.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
baseline=${IFOREST_BASELINE:-$root/../shared/tools/iforest-baseline}
data=${1:?usage: compare.sh DATA.csv [REPEATS]}
repeats=${2:-5}
case $data in /*) ;; *) data=$(pwd)/$data ;; esac
if [ ! -f "$data" ]; then
	echo "compare.sh: $data missing; make it with /usr/bin/python3 $baseline make $data" >&2
	exit 2
fi
if [ ! -f "$baseline" ]; then
	echo "compare.sh: baseline tool $baseline missing (set IFOREST_BASELINE)" >&2
	exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root" && go test -c -o "$work/iforest.test" ./internal/anomaly/iforest/)
echo "GOMAXPROCS=${GOMAXPROCS:-$(nproc)} $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$repeats"); do
	/usr/bin/python3 "$baseline" score "$data"
	(cd "$here/.." && IFOREST_DATA="$data" "$work/iforest.test" -test.run '^TestBaseline$' -test.v) |
		sed -n 's/.*\(go iforest.*\)/\1/p'
done | tee "$work/log"
/usr/bin/python3 - "$work/log" <<'PY'
import re, statistics, sys
runs = {"sklearn": [], "go": []}
for line in open(sys.argv[1]):
    kind = "sklearn" if line.startswith("sklearn") else "go"
    runs[kind].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)})
med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in runs.items()}
ratios = [g["batch_rows_per_s"] / s["batch_rows_per_s"] for s, g in zip(runs["sklearn"], runs["go"])]
print("medians of %d rounds:" % len(ratios))
for k in ("sklearn", "go"):
    print("  %-8s " % k + " ".join("%s=%g" % kv for kv in med[k].items()))
print("  batch throughput ratio: %.1fx (of medians), %.1fx (median of per-round ratios, range %.1f-%.1f)"
      % (med["go"]["batch_rows_per_s"] / med["sklearn"]["batch_rows_per_s"], statistics.median(ratios), min(ratios), max(ratios)))
print("  single-row latency ratio: %.0fx" % (med["sklearn"]["single_row_ms"] / med["go"]["single_row_ms"]))
print("  AUC difference (go - sklearn): %+.4f" % (med["go"]["auc"] - med["sklearn"]["auc"]))
PY
