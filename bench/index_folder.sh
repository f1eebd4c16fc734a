#!/bin/bash
# 10,000-photo folder through `pawdex index` against an embedded server: CLI peak RSS, temp disk, time.
set -e
cd "$(dirname "$0")/.."
rm -rf /tmp/m10k && mkdir -p /tmp/m10k/folder /tmp/m10k/var /tmp/m10k/cache /tmp/m10k/tmp
.venv/bin/python -m bench.shelter_folder /tmp/m10k/folder 10000
du -sh /tmp/m10k/folder
export PAWDEX_DATA_DIR=/tmp/m10k/var XDG_CACHE_HOME=/tmp/m10k/cache TMPDIR=/tmp/m10k/tmp
.venv/bin/pawdex serve --port 8765 > /tmp/m10k/serve.log 2>&1 &
SERVE=$!
for i in $(seq 1 120); do curl -sf localhost:8765/readyz > /dev/null && break; sleep 1; done
start=$(date +%s.%N)
/usr/bin/time -v .venv/bin/pawdex index /tmp/m10k/folder --server http://127.0.0.1:8765 > /tmp/m10k/index.out 2> /tmp/m10k/index.err || true
end=$(date +%s.%N)
echo "index wall: $(echo "$end - $start" | bc) s"
grep -E "Maximum resident|Elapsed" /tmp/m10k/index.err
grep -E "photos:|sent in" /tmp/m10k/index.err | tail -2
du -sh /tmp/m10k/tmp /tmp/m10k/cache
kill $SERVE; wait $SERVE 2>/dev/null || true
