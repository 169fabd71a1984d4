"""Sanity check of alerts.yml without promtool: valid YAML with the rule
fields Prometheus requires, balanced expressions, durations it accepts, and
every medislot metric an expression names exported by a running node (the
`/metrics` text given as the second argument), except those listed as coming
with features not built yet.

Usage: check_rules.py alerts.yml metrics.txt
"""

import re
import sys

import yaml

NOT_YET: dict = {}

rules_path, metrics_path = sys.argv[1:3]
doc = yaml.safe_load(open(rules_path))
exported = set()
for line in open(metrics_path):
    if line.startswith("# TYPE "):
        name, kind = line.split()[2:4]
        exported.add(name)
        if kind == "counter":
            exported.add(name + "_total")
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_sum", name + "_count"}
rules = [r for g in doc["groups"] for r in g["rules"]]
assert rules, "no rules"
for r in rules:
    assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", r["alert"]), r["alert"]
    assert re.fullmatch(r"\d+[smhd]", r.get("for", "0s")), r.get("for")
    assert r["labels"]["severity"] in {"warning", "critical"}
    expr = r["expr"]
    for open_, close in ["()", "[]", "{}"]:
        depth = 0
        for ch in expr:
            depth += (ch == open_) - (ch == close)
            assert depth >= 0, f"{r['alert']}: unbalanced {open_}{close}"
        assert depth == 0, f"{r['alert']}: unbalanced {open_}{close}"
    for name in re.findall(r"\bmedislot_[a-z_]+", expr):
        assert name in exported or name in NOT_YET, f"{r['alert']}: {name} is not exported by medislot"
print(f"{len(rules)} rules ok")
