#!/usr/bin/env python3
"""Traffic for scripts/test-monitoring.sh, python3's standard library only.

  traffic.py load BACKEND UI DASHBOARD SECONDS CATEGORIES_FILE
      4 clients for SECONDS: predict a drawing through the backend, save most of them with the
      model's top-1 (agreement) or another category (disagreement), some drawings never
      predicted (unmatched), one bad body per round (a 4xx), the UI page and the dashboard API.
      Answers of the backend other than 200/4xx are counted, not fatal (the test stops the
      model server on purpose).
  traffic.py burst MODEL_SERVER REQUESTS
      REQUESTS concurrent 32-drawing requests straight to the model server, to overflow its
      queue (429).
"""

import base64
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def drawing(rng):
    pixels = bytearray(784)
    for _ in range(rng.randint(20, 120)):
        pixels[rng.randrange(784)] = 255
    return base64.b64encode(bytes(pixels)).decode()


def load(backend, ui, dashboard, seconds, categories_file):
    categories = [c.strip() for c in open(categories_file) if c.strip()]
    stop = time.time() + float(seconds)
    statuses = Counter()
    lock = threading.Lock()

    def client(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            image = drawing(rng)
            status, answer = post(f"{backend}/invocations/", {"inputs": image})
            seen = [("predict", status)]
            if status == 200:
                top1 = answer["predictions"][0]["label"]
                label = top1 if rng.random() < 0.6 else rng.choice(categories)
                seen.append(("save", post(f"{backend}/save-image/", {"image": image, "category": label})[0]))
            if rng.random() < 0.2:
                seen.append(("save-unmatched", post(f"{backend}/save-image/", {"image": drawing(rng), "category": rng.choice(categories)})[0]))
            seen.append(("bad", post(f"{backend}/invocations/", {"inputs": "not*base64"})[0]))
            seen.append(("ui", get(f"{ui}/")))
            seen.append(("dashboard", get(f"{dashboard}/pipeline_runs")))
            with lock:
                statuses.update(seen)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("traffic:", dict(sorted(statuses.items())))


def burst(model_server, requests):
    rng = random.Random(7)
    body = {"inputs": [drawing(rng) for _ in range(32)]}
    statuses = Counter()
    lock = threading.Lock()

    def one():
        status, _ = post(f"{model_server}/invocations", body)
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one) for _ in range(int(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("burst:", dict(statuses))
    if statuses[429] == 0:
        sys.exit("burst: the model server refused nothing; its queue did not overflow")


if __name__ == "__main__":
    {"load": load, "burst": burst}[sys.argv[1]](*sys.argv[2:])
