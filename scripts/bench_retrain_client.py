"""The client side of scripts/bench-retrain.sh: save the users' drawings through the backend, run
the orchestrator once while polling /invocations/ for the new model version, and print the
timings and the gate's per-class report. Usage: bench_retrain_client.py BACKEND WORK NEW ORCHESTRATOR
"""

import base64
import concurrent.futures
import json
import pathlib
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime

import numpy as np

backend, work, new, orchestrator = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def post(path, body):
    req = urllib.request.Request(
        backend + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers.get("x-model-version"), json.load(res)
    except urllib.error.HTTPError as err:
        return err.code, None, None


def classify(pixels):
    return post("/invocations/", {"inputs": base64.b64encode(pixels.tobytes()).decode()})


def labels(rows):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(classify, rows))
    assert all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200][:3]
    return [a[2]["predictions"][0]["label"] for a in answers], {a[1] for a in answers}


# The users draw: 5 000 saves through the backend.
drawings = [
    (f.stem, row) for f in sorted((work / "users").glob("*.npy")) for row in np.load(f)
]
start = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    saved = list(
        pool.map(
            lambda d: post(
                "/save-image/",
                {"image": base64.b64encode(d[1].tobytes()).decode(), "category": d[0]},
            )[0],
            drawings,
        )
    )
assert saved.count(200) == len(drawings), {s: saved.count(s) for s in set(saved)}
print(f"saved {len(drawings)} drawings through /save-image/ in {time.monotonic() - start:.1f} s")

held_back = np.load(work / "held_back.npy")
before, versions = labels(held_back)
print(f"held-back {new} before: {before.count(new)}/{len(before)} answered {new!r} (version {versions})")

# The pipeline runs; a client keeps asking which version answers.
answers, stop = [], threading.Event()
probe = held_back[0]


def poll():
    while not stop.is_set():
        status, version, _ = classify(probe)
        answers.append((time.monotonic(), status, version))
        time.sleep(0.1)


poller = threading.Thread(target=poll)
poller.start()
t0 = time.monotonic()
orch = subprocess.run([orchestrator, "--once"], capture_output=True, text=True)
t_done = time.monotonic()
print(f"orchestrator exit {orch.returncode} after {t_done - t0:.1f} s")
if orch.returncode != 0:
    print(orch.stdout[-3000:], orch.stderr[-3000:])
first = answers[0][2]
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not any(a[2] != first for a in answers if a[0] > t0):
    time.sleep(0.2)
stop.set()
poller.join()
served = next((a for a in answers if a[0] > t0 and a[2] != first), None)
failed = sum(1 for a in answers if a[1] != 200)
if served:
    print(
        f"orchestrator started -> model server serves version {served[2]}: "
        f"{served[0] - t0:.1f} s ({served[0] - t_done:+.1f} s after the orchestrator exited)"
    )
else:
    print(f"the model server still serves version {first} 120 s after the run (gate refused?)")
print(f"requests during the run: {len(answers)}, failed: {failed}")

db = sqlite3.connect(work / "runs.db")
db.row_factory = sqlite3.Row
run = db.execute("SELECT * FROM pipeline_runs ORDER BY run_id DESC LIMIT 1").fetchone()
print("== stages (pipeline_runs)")
for n in range(1, 8):
    s, e = run[f"stage_{n}_start"], run[f"stage_{n}_end"]
    secs = ""
    if s and e:
        secs = datetime.fromisoformat(e) - datetime.fromisoformat(s)
        secs = f"{secs.total_seconds():7.1f} s"
    print(f"stage {n}: {run[f'stage_{n}_status']:<9} {secs}  {run[f'stage_{n}_message'] or ''}"[:160])
print(f"new_images={run['new_images']} data_commit={run['data_commit']} data_hash={run['data_hash']}")
print(f"model_version={run['model_version']} promoted={run['promoted']}")

report = json.loads(run["gate_report"])
print(f"== gate: {report['decision']}: {report['reason']}")
print(f"evaluation set: {report['evaluation_set']}")
for side in ("champion", "candidate"):
    print(f"{side}: {json.dumps(report[side])}")
print(f"{'category':<14} {'n':>5} {'champion':>9} {'candidate':>10} {'change':>8}")
fmt = lambda v: "-" if v is None else f"{100 * v:.1f}%"
for row in report["per_class"]:
    change = "-" if row.get("change") is None else f"{100 * row['change']:+.1f}"
    mark = " (new)" if row["new"] else ""
    print(
        f"{row['category'] + mark:<14} {row['drawings']:>5} {fmt(row['champion_top1']):>9} "
        f"{fmt(row['candidate_top1']):>10} {change:>8}"
    )

after, versions = labels(held_back)
print(f"held-back {new} after: {after.count(new)}/{len(after)} answered {new!r} (version {versions})")
