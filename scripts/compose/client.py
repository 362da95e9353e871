"""The client side of scripts/test-compose.sh: a person's requests to the compose stack through
its published ports (127.0.0.1), and the checks of what the stack did with them.

  client.py draw DATA N        the page and its config; N real drawings of every category
                               classified through the backend (mostly right, all from version 1),
                               then saved with their labels; prints (alone on stdout) the
                               version that answered
  client.py after-run VERSION  the run is in the dashboard with all seven stages complete, MLflow
                               holds a newer version with the run's data version, and the model
                               server serves whichever version the alias names
  client.py targets            Prometheus (in its container) scrapes every target as up, but
                               the host's Windows exporter, which is down where there is none
"""

import base64
import json
import pathlib
import sys
import time
import urllib.error
import urllib.request

import numpy as np

UI = "http://127.0.0.1:9080"
BACKEND = "http://127.0.0.1:8000"
MODEL_SERVER = "http://127.0.0.1:5002"
DASHBOARD = "http://127.0.0.1:8001"
MLFLOW = "http://127.0.0.1:5000"
PROMETHEUS = "http://127.0.0.1:9090"
MODEL_NAME = "doodle-classifier"
ALIAS = "champion"


def request(url, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            raw = res.read()
            return res.status, res.headers, raw
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def get_json(url):
    status, _, raw = request(url)
    assert status == 200, f"GET {url}: {status} {raw[:300]!r}"
    return json.loads(raw)


def check(condition, message):
    if not condition:
        print(f"client: FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def draw(data_dir, per_category):
    status, _, page = request(UI + "/")
    check(status == 200 and b"<canvas" in page, f"the drawing page: {status}")
    config = get_json(UI + "/config.json")
    check("8000" in json.dumps(config), f"the page's config names the backend: {config}")

    drawings = []
    for npy in sorted(pathlib.Path(data_dir).glob("*.npy")):
        # From the end of each file: the drawings the test model saw least of (it trains on the
        # first 1 000 of each category).
        rows = np.load(npy, mmap_mode="r")[-per_category:]
        drawings += [(npy.stem, np.ascontiguousarray(row, dtype=np.uint8)) for row in rows]
    check(len(drawings) >= 10 * per_category, f"test drawings in {data_dir}: {len(drawings)}")

    right, versions = 0, set()
    for category, pixels in drawings:
        b64 = base64.b64encode(pixels.tobytes()).decode()
        status, headers, raw = request(BACKEND + "/invocations/", {"inputs": b64})
        check(status == 200, f"classify a {category}: {status} {raw[:300]!r}")
        answer = json.loads(raw)["predictions"][0]
        right += answer["label"] == category
        versions.add(headers.get("x-model-version"))
        status, _, raw = request(BACKEND + "/save-image/", {"image": b64, "category": category})
        check(status == 200, f"save a {category}: {status} {raw[:300]!r}")
    share = right / len(drawings)
    print(f"client: classified and saved {len(drawings)} drawings; top-1 {share:.1%}; "
          f"answered by model version {sorted(versions)}", file=sys.stderr)
    check(share >= 0.5, f"the served model should get most of them right: {share:.1%}")
    check(len(versions) == 1 and None not in versions, f"one model version answers: {versions}")

    # Bad input gets a precise error through the same ports.
    status, _, raw = request(BACKEND + "/invocations/", {"inputs": "not base64!"})
    check(status == 400 and b"detail" in raw, f"bad base64: {status} {raw[:200]!r}")
    print(versions.pop())  # stdout: only the version, for the script


def latest_run():
    runs = get_json(DASHBOARD + "/pipeline_runs?limit=1")
    check(runs, "the dashboard lists no run")
    return runs[0]


def after_run(version_before):
    run = latest_run()
    statuses = [run.get(f"stage_{n}_status") for n in range(1, 8)]
    check(statuses == ["complete"] * 7, f"run {run.get('run_id')}: stages {statuses}; {run}")
    print(f"client: run {run['run_id']} in the dashboard: all seven stages complete")

    status, _, raw = request(
        f"{MLFLOW}/api/2.0/mlflow/model-versions/search?filter=name%3D%27{MODEL_NAME}%27"
    )
    check(status == 200, f"MLflow model versions: {status} {raw[:300]!r}")
    versions = json.loads(raw).get("model_versions", [])
    numbers = sorted(int(v["version"]) for v in versions)
    check(numbers and numbers[-1] > int(version_before),
          f"the run registered a version after {version_before}: {numbers}")
    newest = next(v for v in versions if int(v["version"]) == numbers[-1])
    tags = {t["key"]: t["value"] for t in newest.get("tags", [])}
    print(f"client: MLflow holds versions {numbers}; the newest's tags: {sorted(tags)}")

    alias = get_json(
        f"{MLFLOW}/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias={ALIAS}"
    )["model_version"]["version"]
    deadline = time.monotonic() + 120
    while True:
        served = str(get_json(MODEL_SERVER + "/model").get("version"))
        if served == str(alias) or time.monotonic() > deadline:
            break
        time.sleep(1)
    check(served == str(alias), f"the model server serves {served}, the alias names {alias}")
    verdict = "promoted" if str(alias) != str(version_before) else "refused by the gate"
    print(f"client: version {numbers[-1]} {verdict}; the model server serves {served}")


def targets():
    deadline = time.monotonic() + 90
    while True:
        active = get_json(PROMETHEUS + "/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in active}
        needed = {job: h for job, h in health.items() if job != "windows"}
        if needed and all(h == "up" for h in needed.values()):
            break
        if time.monotonic() > deadline:
            check(False, f"targets not all up after 90 s: {health}")
        time.sleep(2)
    jobs = {"backend", "model-server", "ui-server", "dashboard", "node"}
    check(jobs <= set(needed), f"every job has a target: {sorted(health)}")
    print(f"client: Prometheus scrapes {sorted(needed)} as up; windows is {health.get('windows')}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "draw":
        draw(args[0], int(args[1]))
    elif command == "after-run":
        after_run(args[0])
    elif command == "targets":
        targets()
    else:
        sys.exit(f"unknown command {command}")
