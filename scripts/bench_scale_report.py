#!/usr/bin/env python3
"""Writes docs/bench-scale.md from the JSON reports of `scripts/bench scale`."""
import json
import os
import sys

work, big, small, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def load(name):
    """A step's report; {} when it was not run or failed (see the step's .err file)."""
    path = os.path.join(work, name + ".json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}
    report = json.load(open(path))
    return {} if report.get("failed") else report


def mb(v):
    return f"{v} MB" if v else "—"


def shape(backend, label, run):
    m = load(f"{backend}-{big}-{run}")
    lat = m.get("latency_ms", {})
    status = m.get("status", {})
    ok = sum(n for k, n in status.items() if k.startswith("2"))
    return f"| {label} | {lat.get('p50', '—')} / {lat.get('p99', '—')} ms | {ok} of {m.get('answered', '—')} | {status} |"


def row(backend, label):
    b, s = f"{backend}-{big}", f"{backend}-{small}"
    mix, limit = load(b + "-search-mix"), load(b + "-search-limit")
    mem_big, mem_small = load(b + "-memory").get("peak_rss_mb"), load(s + "-memory").get("peak_rss_mb")
    fresh = load(b + "-freshness").get("gone_after_ms", {})
    status = mix.get("status", {})
    ok = sum(n for k, n in status.items() if k.startswith("2"))
    growth = f"{(mem_big / mem_small - 1) * 100:+.0f}%" if mem_big and mem_small else "—"
    return (
        f"| {label} | {load(b + '-seed').get('seconds', '—')} s | {load(b + '-first').get('ms', '—')} ms "
        f"| {mix.get('latency_ms', {}).get('p50', '—')} / {mix.get('latency_ms', {}).get('p99', '—')} ms "
        f"| {ok} of {mix.get('answered', '—')} | {limit.get('queries_per_second', '—')}/s, p99 {limit.get('latency_ms', {}).get('p99', '—')} ms "
        f"| {mb(mem_big)} ({mb(mem_small)} at {small:,}: {growth}) | p50 {fresh.get('p50', '—')} / max {fresh.get('max', '—')} ms |"
    )


print(f"""# Search at scale

`scripts/bench scale` on this machine: {big:,} doctors × 60 days per backend, the
search mix (a specialty, with or without a 50 km radius, a language, a mode, a date
window) offered at 200/s for {seconds} s, the store's own rate for the same queries
(`medislot-bench search-limit`, no HTTP, no application code, 8 callers) in the same run,
and the same search run at {small:,} doctors for the memory comparison.

| backend | seed | first search after start | search p50 / p99 | answered 2xx | store's own rate | node peak RSS | freshness (book on node A, gone from node B's search) |
|---|---|---|---|---|---|---|---|
{row("sqlite", "SQLite")}
{row("pg", "PostgreSQL")}

Targets: p99 ≤ 50 ms with every request answered 200; RSS ≤ 250 MB and at most 20% above
the small run; first search ≤ 1 s; freshness ≤ 2 s; seed ≤ 10 min per backend.

The same mix at 200/s without its date windows (every search starts now: the index read
in its order, or a radius), right after, on the same node:

| backend and run | p50 / p99 | answered 2xx | statuses |
|---|---|---|---|
{shape("sqlite", "SQLite, the whole mix", "search-mix")}
{shape("sqlite", "SQLite, searches starting now", "search-now")}
{shape("pg", "PostgreSQL, the whole mix", "search-mix")}
{shape("pg", "PostgreSQL, searches starting now", "search-now")}
""")
