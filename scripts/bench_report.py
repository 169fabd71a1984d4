"""Turns the JSON reports scripts/bench wrote into the Markdown table for the README."""

import json
import os
import sys

work, doctors, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def load(name):
    path = os.path.join(work, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def lat(r):
    l = r["latency_ms"]
    return f"p50 {l['p50']} / p99 {l['p99']} / p99.9 {l.get('p99.9', '–')} / max {l['max']} ms"


def statuses(r):
    s = ", ".join(f"{k}×{v}" for k, v in sorted(r["status"].items()))
    s += f", {r['errors']} no answer" if r["errors"] else ""
    return s + (f", {r['shed']} not sent (over {2000} in flight)" if r.get("shed") else "")


rows = []
for backend, label in [("sqlite", "SQLite"), ("pg", "PostgreSQL")]:
    base = load(f"{backend}-baseline")
    book, race, search = load(f"{backend}-book"), load(f"{backend}-race"), load(f"{backend}-search")
    slots, mixed, mem = load(f"{backend}-slots"), load(f"{backend}-mixed"), load(f"{backend}-memory")
    if not book:
        continue
    base_rate = base["bookings_per_s"] if base else 0
    # Bookings made per second (201s over the time the answers took, a backlog
    # included): an overloaded node also answers 503 at once.
    elapsed = book["answered"] / book["rate_achieved"] if book["rate_achieved"] else float(seconds)
    booked = round(book["status"].get("201", 0) / elapsed, 1)
    bad = sum(v for k, v in book["status"].items() if k != "201") + book["errors"] + book.get("shed", 0)
    if backend == "sqlite":
        met = booked >= 1500 * 0.98 and book["latency_ms"]["p99"] <= 25 and bad == 0
        target = "≥ 1,500 bookings/s, p99 ≤ 25 ms"
    else:
        met = base_rate > 0 and booked >= 0.5 * base_rate and bad == 0
        target = f"≥ 50% of pgbench ({base_rate:.0f}/s) = {base_rate * 0.5:.0f}/s"
    rows.append((f"{label}: book", target, f"{booked} bookings/s ({book['rate_offered']}/s offered, {book['rate_achieved']}/s answered); {lat(book)}; {statuses(book)}", met))
    how = "Rust loop on the store, 4 callers" if backend == "sqlite" else "pgbench, 8 clients"
    rows.append((f"{label}: database alone", "—", f"{base_rate:.0f} bookings/s ({how})", None))
    rows.append((f"{label}: race, 200 clients", "1 × 201, 199 × 409, p99 ≤ 100 ms", f"{statuses(race)}; {lat(race)}", race["exactly_one_winner"] and race["latency_ms"]["p99"] <= 100))
    rows.append((f"{label}: search, {doctors:,} doctors × 60 days", "p99 ≤ 50 ms at 200/s", f"{search['rate_achieved']}/s; {lat(search)}; {statuses(search)}", search["latency_ms"]["p99"] <= 50 and search["rate_achieved"] >= 196))
    rows.append((f"{label}: one doctor's week of slots", "—", f"{slots['rate_achieved']}/s of 500; {lat(slots)}", None))
    rows.append((f"{label}: mixed day (80/15/5)", "—", f"{mixed['rate_achieved']}/s of 500; {lat(mixed)}; {statuses(mixed)}", None))
    rows.append((f"{label}: memory under load", "< 200 MB RSS", f"{mem['peak_rss_mb']} MB peak", mem["peak_rss_mb"] < 200))

print(f"Measured with `scripts/bench` ({doctors:,} doctors, {seconds} s per run, open model with latencies from each request's intended send time).\n")
print("| benchmark | target | measured | met |")
print("|---|---|---|---|")
for name, target, measured, met in rows:
    mark = "—" if met is None else ("yes" if met else "**no**")
    print(f"| {name} | {target} | {measured} | {mark} |")
