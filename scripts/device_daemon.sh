#!/usr/bin/env bash
# Start a long job on the lent GPU machine as a daemon that outlives one device call, and follow it:
#   bash scripts/device_daemon.sh start LOG CMD...   # start CMD (setsid), then follow LOG
#   bash scripts/device_daemon.sh follow LOG         # follow LOG until the job is done or FOLLOW_S pass
# It installs the carried wheels (.whl/) first. Following ends after FOLLOW_S seconds (default 540) or when
# LOG's last line says "done"/"FAILED"; results then go to $OUT (COPY: files to copy there).
set -uo pipefail
what=$1 log=$2; shift 2
if [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 REVISE="python3 -m revise"
mkdir -p "$(dirname "$log")"
if [ "$what" = start ]; then
    setsid bash -c '"$@" > "$0" 2>&1 || echo FAILED >> "$0"' "$log" "$@" < /dev/null &
    sleep 2
fi
end=$((SECONDS + ${FOLLOW_S:-540}))
while [ $SECONDS -lt $end ]; do
    last=$(grep -v '^\s*$' "$log" | tail -n 1)
    case "$last" in *"] done"*|FAILED*) break ;; esac
    sleep 10
done
grep -v "it/s\]\|batch/s\]\|item/s\]" "$log" | tail -n 60
for f in ${COPY:-}; do [ -f "$f" ] && cp "$f" "$OUT/$(echo "$f" | tr '/' '_')"; done
cp "$log" "$OUT/" 2>/dev/null
nvidia-smi --query-gpu=name --format=csv,noheader
