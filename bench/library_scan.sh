#!/bin/bash
# A 10,000-photo library indexed in place through an embedded server: time of the first scan,
# of a re-scan with nothing changed, and of one after 10 files added, 10 changed, 10 removed;
# the storage it took (thumbnails only) against the library's size.
set -e
cd "$(dirname "$0")/.."
W=/tmp/lib10k
rm -rf $W && mkdir -p $W/nas/library $W/var
.venv/bin/python -m bench.shelter_folder /tmp/lib10k/nas/library 10000
export PAWDEX_DATA_DIR=$W/var PAWDEX_LIBRARY_ROOTS="[\"$W/nas\"]"
.venv/bin/pawdex serve --port 8766 > $W/serve.log 2>&1 &
SERVE=$!
trap 'kill $SERVE; wait $SERVE 2>/dev/null || true' EXIT
for i in $(seq 1 120); do curl -sf localhost:8766/readyz > /dev/null && break; sleep 1; done
.venv/bin/python - <<'PY'
import os, random, time
from pathlib import Path
import httpx
from pawdex.cli.client import wait_job
W = Path("/tmp/lib10k")
key = (W / "var" / "admin.key").read_text().strip()
c = httpx.Client(base_url="http://127.0.0.1:8766", headers={"X-API-Key": key}, timeout=60)
lib = c.post("/v1/libraries", json={"path": str(W / "nas" / "library")}).json()
def scan(label):
    t = time.monotonic()
    job = wait_job(c, c.post(f"/v1/libraries/{lib['id']}/scan").json()["id"], timeout=3600)
    print(f"{label}: {time.monotonic() - t:.1f} s  status={job['status']} total={job['total']} "
          f"done={job['done']} dup={job['duplicates']} failed={job['failed']} | {job['message']}")
scan("first scan")
scan("re-scan, nothing changed")
files = sorted((W / "nas" / "library").rglob("*.*"))
rng = random.Random(0)
for p in rng.sample(files, 20)[:10]:
    p.write_bytes(p.read_bytes() + b"changed")
for p in rng.sample(files, 40)[30:]:
    p.unlink(missing_ok=True)
for i in range(10):
    (W / "nas" / "library" / "new" / f"n{i}.jpg").parent.mkdir(exist_ok=True)
    photo = sorted(Path(os.environ.get("PAWDEX_PHOTOS_DIR", "../shared/photos")).glob("*.jpg"))[i]
    (W / "nas" / "library" / "new" / f"n{i}.jpg").write_bytes(photo.read_bytes() + b"new")
scan("re-scan, 10 added, 10 changed, 10 removed")
PY
du -sh $W/nas/library $W/var/storage
