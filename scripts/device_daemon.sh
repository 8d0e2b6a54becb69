#!/usr/bin/env bash
# Start a long job on the lent GPU machine as a daemon that outlives one device call, and follow it:
#   bash scripts/device_daemon.sh start LOG CMD...   # copy the tree to $JOB, start CMD there (setsid), follow LOG
#   bash scripts/device_daemon.sh follow LOG         # follow LOG until the job is done or FOLLOW_S pass
# The job runs in its own copy of the working tree ($JOB, default /tmp/job): a later device call re-copies
# the working tree, and a job running inside it would see its files vanish for a moment (worker processes
# then fail to import revise). It installs the carried wheels (.whl/) first. Following ends after FOLLOW_S
# seconds (default 540) or when the job has ended: CMD's exit appends "[daemon] finished" (status 0) or "FAILED" to
# LOG (DONE, default "[daemon] finished", names another last line to stop at). Then $OUT gets LOG, results.tgz (every
# .json/.jsonl/.yaml/.txt under RESULTS, default runs/, clips and caches left out) and PACK (a file, e.g. a
# model's .tgz) cut into 15 MiB parts (rejoin with cat).
set -uo pipefail
what=$1 log=$2; shift 2
JOB=${JOB:-/tmp/job}
if [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
if [ "$what" = start ]; then
    mkdir -p "$JOB"
    tar --exclude=./.whl --exclude=./.git -cf - . | tar -xf - -C "$JOB"
fi
cd "$JOB" || exit 1
export PYTHONPATH=/tmp/site:$JOB PYTHONUNBUFFERED=1 REVISE="python3 -m revise"
mkdir -p "$(dirname "$log")"
if [ "$what" = start ]; then
    setsid bash -c 'if "$@" > "$0" 2>&1; then echo "[daemon] finished" >> "$0"; else echo FAILED >> "$0"; fi' \
        "$log" "$@" < /dev/null &
    sleep 2
fi
collect() {  # results so far into $OUT (also while following: a call cut at its limit still brings them)
    find "${RESULTS:-runs}" \( -name '*.json' -o -name '*.jsonl' -o -name '*.yaml' -o -name '*.txt' \) -size -4M \
        -not -path '*/cache*' -not -path '*/checkpoint-*' -not -path '*/model/*' 2>/dev/null |
        tar -czf "$OUT/results.tmp" -T - 2>/dev/null && mv "$OUT/results.tmp" "$OUT/results.tgz"
    cp "$log" "$OUT/" 2>/dev/null
}
end=$((SECONDS + ${FOLLOW_S:-540}))
while [ $SECONDS -lt $end ]; do
    last=$(grep -v '^\s*$' "$log" | tail -n 1)
    case "$last" in *"${DONE:-[daemon] finished}"*|FAILED*) break ;; esac
    sleep 10
    [ $((SECONDS % 60)) -lt 10 ] && collect
done
grep -v "it/s\]\|batch/s\]\|item/s\]\|s/it\]\|clip/s\]" "$log" | tail -n 80
collect
[ -n "${PACK:-}" ] && [ -f "$PACK" ] && split -b 15M "$PACK" "$OUT/$(basename "$PACK").part-"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
