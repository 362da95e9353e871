#!/usr/bin/env python3
"""Checks of the monitoring files, offline and against a running Prometheus.

  check.py lint                         Grafana files: JSON/YAML, unique panel ids, datasource uid
  check.py test-config OUT MAP RULES    prometheus.yml for loopback: targets rewritten by MAP
                                        (JSON {"backend:8000": "127.0.0.1:4711", ...}), 1 s
                                        intervals, rule_files -> RULES
  check.py test-rules OUT               prometheus.rules.yml with every `for:` set to 0s
  check.py queries PROM                 every panel query and alert expression returns data;
                                        every metric a panel names is one Prometheus scraped
  check.py firing PROM NAME...          wait until each alert NAME is firing in /api/v1/alerts

Windows-exporter queries (all their metrics named windows_*) are checked against the exporter's
documented names (windows_exporter_metrics.txt) instead of against data: none runs here.
Uses python3's standard library and PyYAML (in the project's .venv: scripts/test-monitoring.sh runs this with .venv/bin/python).
"""

import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana/dashboards").glob("*.json"))
DATASOURCES = REPO / "grafana/provisioning/datasources/prometheus.yml"
PROVIDERS = REPO / "grafana/provisioning/dashboards/doodle.yml"
RULES = REPO / "prometheus.rules.yml"
CONFIG = REPO / "prometheus.yml"
WINDOWS_NAMES = {
    line.strip()
    for line in (Path(__file__).parent / "windows_exporter_metrics.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def done():
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


# --- PromQL, as far as these checks need it ------------------------------------------------

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "inf", "nan"}
LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r'\s+|"(?:\\.|[^"\\])*"|\{[^}]*\}|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*'
                   r'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|==|!=|>=|<=|[-+*/%^<>(),]')


def tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        if not m.group().isspace():
            out.append((m.group(), m.start()))
        pos = m.end()
    return out


def metric_names(expr):
    """Names of the series an expression selects: identifiers outside label matchers, strings,
    ranges and by/on/... (label) lists that are neither functions nor keywords."""
    masked = re.sub(r'"(?:\\.|[^"\\])*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    masked = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", masked)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", masked):
        if m.group().lower() in KEYWORDS or re.match(r"\s*\(", masked[m.end():]):
            continue
        if m.start() > 0 and (masked[m.start() - 1].isdigit() or masked[m.start() - 1] == "."):
            continue  # an exponent or unit inside a number
        names.add(m.group())
    return names


PRECEDENCE = [("or",), ("and", "unless"), ("==", "!=", ">", "<", ">=", "<=")]


def split_top(expr):
    """The lowest-precedence top-level binary operator: (left, op, right), or None."""
    toks = tokens(expr)
    for ops in PRECEDENCE:
        depth = 0
        for i, (tok, start) in enumerate(toks):
            depth += tok == "("
            depth -= tok == ")"
            if depth == 0 and tok.lower() in ops and i > 0:
                left = expr[:start]
                rest = toks[i + 1:]
                j = 0
                while j < len(rest) and rest[j][0].lower() in LIST_KEYWORDS | {"bool"}:
                    j += 1
                    if j < len(rest) and rest[j][0] == "(":
                        d = 0
                        while j < len(rest):
                            d += rest[j][0] == "("
                            d -= rest[j][0] == ")"
                            j += 1
                            if d == 0:
                                break
                right = expr[rest[j][1]:] if j < len(rest) else ""
                return left.strip(), tok, right.strip()
    return None


# --- Prometheus's HTTP API ---------------------------------------------------------------

def api(prom, path, **params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]


def has_data(prom, expr):
    data = api(prom, "/api/v1/query", query=expr)
    if data["resultType"] == "scalar":
        return True
    return len(data["result"]) > 0


def live(prom, expr):
    """The expression answers, or each side of its top-level operator does (an alert's
    condition is often false; its signal must still exist)."""
    if has_data(prom, expr):
        return True
    parts = split_top(expr)
    return parts is not None and live(prom, parts[0]) and live(prom, parts[2])


def is_windows(expr):
    names = metric_names(expr)
    return bool(names) and all(n.startswith("windows_") for n in names)


# --- the files ---------------------------------------------------------------------------

def panels():
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            yield path.name, board, panel


def alert_rules():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield group["name"], rule


def lint():
    ds = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {d["uid"] for d in ds}
    if len(ds) != 1 or uids != {"prometheus"}:
        fail(f"{DATASOURCES.name}: expected one datasource with uid prometheus, got {uids}")
    uid = next(iter(uids))
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    if not providers or providers[0]["type"] != "file":
        fail(f"{PROVIDERS.name}: no file provider")
    if len(DASHBOARDS) < 5:
        fail(f"expected 5 dashboards, found {[p.name for p in DASHBOARDS]}")
    board_uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())  # valid JSON, or this raises
        if board["uid"] in board_uids:
            fail(f"{path.name}: dashboard uid {board['uid']} used twice")
        board_uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        if len(ids) != len(set(ids)):
            fail(f"{path.name}: panel ids are not unique: {ids}")
        text = path.read_text()
        if "${DS_" in text or "__inputs" in text:
            fail(f"{path.name}: has sharing placeholders that provisioning does not fill")
        for panel in board["panels"]:
            where = f"{path.name} panel {panel['id']} ({panel['title']})"
            if panel.get("datasource", {}).get("uid") != uid:
                fail(f"{where}: datasource is not uid {uid}")
            if not panel.get("targets"):
                fail(f"{where}: no query")
            for t in panel["targets"]:
                if t.get("datasource", {}).get("uid") != uid:
                    fail(f"{where} {t.get('refId')}: datasource is not uid {uid}")
                if not t.get("expr"):
                    fail(f"{where} {t.get('refId')}: empty expr")
                else:
                    tokens(t["expr"])  # readable
    for _, rule in alert_rules():
        if not rule.get("annotations", {}).get("summary"):
            fail(f"alert {rule['alert']}: no summary")
    print(f"lint: {len(DASHBOARDS)} dashboards, {sum(1 for _ in panels())} panels, "
          f"{sum(1 for _ in alert_rules())} alert rules")


def queries(prom):
    scraped = set(api(prom, "/api/v1/label/__name__/values"))
    checked = 0
    for name, _, panel in panels():
        for t in panel["targets"]:
            where = f"{name} panel {panel['id']} ({panel['title']}) {t['refId']}"
            expr = t["expr"]
            names = metric_names(expr)
            if is_windows(expr):
                unknown = names - WINDOWS_NAMES
                if unknown:
                    fail(f"{where}: not windows_exporter's documented names: {sorted(unknown)}")
                else:
                    print(f"  windows {where}: {sorted(names)} documented")
                continue
            unknown = names - scraped
            if unknown:
                fail(f"{where}: no service exports {sorted(unknown)}")
            elif not has_data(prom, expr):
                fail(f"{where}: no data for {expr}")
            else:
                checked += 1
    for group, rule in alert_rules():
        where = f"alert {rule['alert']}"
        expr = rule["expr"]
        if is_windows(expr):
            unknown = metric_names(expr) - WINDOWS_NAMES
            if unknown:
                fail(f"{where}: not windows_exporter's documented names: {sorted(unknown)}")
            continue
        unknown = metric_names(expr) - scraped
        if unknown:
            fail(f"{where}: no service exports {sorted(unknown)}")
        elif not live(prom, expr):
            fail(f"{where}: no data for its signal: {expr}")
        else:
            checked += 1
    print(f"queries: {checked} panel queries and alert expressions returned data")


def firing(prom, names, timeout=90):
    deadline = time.time() + timeout
    want = set(names)
    while True:
        alerts = api(prom, "/api/v1/alerts")["alerts"]
        now = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        if want <= now:
            for a in alerts:
                if a["labels"]["alertname"] in want and a["state"] == "firing":
                    print(f"  firing {a['labels']['alertname']}: {a['annotations'].get('summary')}")
            return
        if time.time() > deadline:
            fail(f"not firing within {timeout}s: {sorted(want - now)} (firing: {sorted(now)})")
            return
        time.sleep(1)


def test_config(out, mapping_path, rules):
    mapping = json.loads(Path(mapping_path).read_text())
    config = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [rules]
    for job in config["scrape_configs"]:
        for sc in job["static_configs"]:
            for i, target in enumerate(sc["targets"]):
                if target not in mapping:
                    raise SystemExit(f"test-config: no loopback address for target {target}")
                sc["targets"][i] = mapping[target]
    Path(out).write_text(yaml.safe_dump(config, sort_keys=False))


def test_rules(out):
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    Path(out).write_text(yaml.safe_dump(rules, sort_keys=False))


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "lint":
        lint()
    elif cmd == "queries":
        queries(args[0])
    elif cmd == "firing":
        firing(args[0], args[1:])
    elif cmd == "test-config":
        test_config(*args)
        return
    elif cmd == "test-rules":
        test_rules(*args)
        return
    elif cmd == "names":  # debugging aid: the metric names an expression selects
        print(sorted(metric_names(args[0])))
        return
    else:
        raise SystemExit(__doc__)
    done()


if __name__ == "__main__":
    main(sys.argv[1:])
