"""Clients nobody here wrote, against medislot's FHIR facade.

1. Every resource the facade returns over the demo data set is validated
   with the independent FHIR R4 model library `fhir.resources` (4.0.1).
2. The `fhirpy` client searches free slots, holds, books (idempotently),
   reads, is refused a taken slot, and cancels through `$book`.

3. SMART Scheduling Links: the $bulk-publish manifest and its NDJSON files
   parse line by line and validate, every Slot references a published
   Schedule and every Schedule a published Location, conditional requests
   and `_since` work, and a slot's booking deep link books exactly that slot
   in the web page (signing in on the way).

Usage: fhir_clients.py BASE_URL PATIENT_TOKEN OTHER_PATIENT_TOKEN PATIENT_EMAIL PASSWORD
Prints a JSON summary; exits non-zero on the first failure.
"""

import collections
import datetime
import json
import os
import re
import sys
import time
import uuid

import requests
from fhir.resources import construct_fhir_element, __fhir_version__
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

BASE, TOKEN, OTHER, EMAIL, PASSWORD = sys.argv[1:6]
assert __fhir_version__ == "4.0.1", f"validating against FHIR {__fhir_version__}, not R4"
counts = collections.Counter()


# fhir.resources checks structure, types and cardinality, not the codes of
# required bindings: those are checked here, from the R4 specification's value sets.
REQUIRED_CODES = {
    ("Slot", "status"): {"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"},
    ("Appointment", "status"): {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                                "entered-in-error", "checked-in", "waitlist"},
    ("Location", "status"): {"active", "suspended", "inactive"},
    ("Location", "mode"): {"instance", "kind"},
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                         "history", "searchset", "collection"},
    ("CapabilityStatement", "status"): {"draft", "active", "retired", "unknown"},
    ("CapabilityStatement", "kind"): {"instance", "capability", "requirements"},
}
PARTICIPANT_STATUS = {"accepted", "declined", "tentative", "needs-action"}
PARTICIPANT_REQUIRED = {"required", "optional", "information-only"}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}
ISSUE_TYPE = {"invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
              "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
              "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict",
              "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational"}


def check_codes(resource):
    kind = resource["resourceType"]
    for (k, field), codes in REQUIRED_CODES.items():
        if k == kind and field in resource:
            assert resource[field] in codes, f"{kind}.{field} = {resource[field]!r} is not in its required value set"
    for p in resource.get("participant", []) if kind == "Appointment" else []:
        assert p["status"] in PARTICIPANT_STATUS and p.get("required", "required") in PARTICIPANT_REQUIRED, p
    for i in resource.get("issue", []) if kind == "OperationOutcome" else []:
        assert i["severity"] in ISSUE_SEVERITY and i["code"] in ISSUE_TYPE, i


def no_empty(value, path):
    """FHIR JSON has no empty arrays, objects or strings: absent, not empty."""
    if isinstance(value, dict):
        assert value, f"empty object at {path}"
        for k, v in value.items():
            no_empty(v, f"{path}.{k}")
    elif isinstance(value, list):
        assert value, f"empty array at {path}"
        for i, v in enumerate(value):
            no_empty(v, f"{path}[{i}]")
    else:
        assert value != "" and value is not None, f"empty value at {path}"


# Every resource read is also written here, for fhir_schema_check.py (HL7's JSON Schema).
DUMP = open(os.environ["FHIR_DUMP"], "w") if os.environ.get("FHIR_DUMP") else None


def validate(resource, top=True):
    """Validates one resource (and a Bundle's entries) with fhir.resources."""
    kind = resource["resourceType"]
    no_empty(resource, kind)
    construct_fhir_element(kind, resource)  # raises on anything invalid
    check_codes(resource)
    counts[kind] += 1
    if top and DUMP:
        DUMP.write(json.dumps(resource) + "\n")
    for entry in resource.get("entry", []) if kind == "Bundle" else []:
        validate(entry["resource"], top=False)


def get(path, token=None, expect=200, **params):
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = requests.get(path if path.startswith("http") else f"{BASE}/{path}", params=params, headers=headers, timeout=60)
    assert r.status_code == expect, f"GET {r.url}: {r.status_code} {r.text[:500]}"
    assert r.headers["content-type"].startswith("application/fhir+json"), r.headers["content-type"]
    body = r.json()
    validate(body)
    return body


def search_all(kind, token=None, **params):
    """Every page of a search, following `next` links; returns the resources."""
    out, page = [], get(kind, token, _count=100, **params)
    while True:
        assert page["type"] == "searchset" and isinstance(page["total"], int)
        out += [e["resource"] for e in page.get("entry", [])]
        nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
        if not nxt:
            break
        page = get(nxt[0], token)
    assert len(out) == page["total"], f"{kind}: {len(out)} resources for total {page['total']}"
    return out


# 1. Validation of everything the facade serves over the demo data.
capability = get("metadata")
assert capability["fhirVersion"] == "4.0.1"
supported = {r["type"] for r in capability["rest"][0]["resource"]}
assert supported == {"Practitioner", "PractitionerRole", "Location", "Schedule", "Slot", "Appointment"}, supported
# Every operation the CapabilityStatement names is defined where it says.
for r in capability["rest"][0]["resource"]:
    for op in r.get("operation", []):
        definition = get(op["definition"])
        assert definition["resourceType"] == "OperationDefinition" and definition["code"] == op["name"], definition
# _count=0 asks for the total alone; a date may be partial (a month, a year).
total_only = get("Practitioner", _count=0)
assert total_only["total"] > 0 and "entry" not in total_only, total_only
month = datetime.date.today().strftime("%Y-%m")
for date in [month, f"ge{month}"]:
    get("Slot", schedule=f"Schedule/{search_all('Schedule')[0]['id']}", start=date)

for kind in ["Practitioner", "PractitionerRole", "Location"]:
    for res in search_all(kind):
        get(f"{kind}/{res['id']}")
schedules = search_all("Schedule")
assert schedules, "the demo has schedules"
slot_statuses = collections.Counter()
for sched in schedules:
    get(f"Schedule/{sched['id']}")
    for ref in sched["actor"]:
        get(ref["reference"])  # every actor resolves
    for slot in search_all("Slot", schedule=f"Schedule/{sched['id']}", status="free,busy,busy-tentative"):
        assert slot["schedule"]["reference"] == f"Schedule/{sched['id']}"
        slot_statuses[slot["status"]] += 1
assert slot_statuses["free"] > 0 and slot_statuses["busy"] > 0, slot_statuses
mine = search_all("Appointment", TOKEN)
assert mine, "the demo patient has appointments"
this_year = search_all("Appointment", TOKEN, date=str(datetime.date.today().year))
assert {a["id"] for a in this_year} <= {a["id"] for a in mine}, "a year is a date too"
for appt in mine:
    get(f"Appointment/{appt['id']}", TOKEN)
    patients = [p["actor"] for p in appt["participant"] if p["actor"].get("type") == "Patient"]
    assert len(patients) == 1 and patients[0]["identifier"]["value"] and patients[0]["display"], patients
    for p in appt["participant"]:
        if "reference" in p["actor"]:
            get(p["actor"]["reference"])  # every literal reference resolves
    for sl in appt["slot"]:
        get(sl["reference"])  # past slots too (fulfilled, no-show, cancelled)
# Patient scoping: the other patient sees none of these.
others = {a["id"] for a in search_all("Appointment", OTHER)}
assert not others & {a["id"] for a in mine}, "a patient sees only their own appointments"
get(f"Appointment/{mine[0]['id']}", OTHER, expect=404)
get("Appointment", expect=401)  # no token
found = get("Appointment/$find", specialty="cardiology", _count=20)
assert found["entry"] and all(e["resource"]["status"] == "proposed" for e in found["entry"])
get("Slot", expect=400)  # schedule is required: an OperationOutcome, validated too
get("Slot", expect=400, schedule=f"Schedule/{schedules[0]['id']}", start="yesterday")
get("Practitioner/not-a-doctor", expect=404)

# 2. A FHIR client library books through the facade.
fhir = SyncFHIRClient(BASE, authorization=f"Bearer {TOKEN}")
other = SyncFHIRClient(BASE, authorization=f"Bearer {OTHER}")
sched = schedules[-1]
free = fhir.resources("Slot").search(schedule=f"Schedule/{sched['id']}", status="free").limit(5).fetch()
assert free, "free slots found"
slot = free[0]


def parameters(appointment):
    return {"resourceType": "Parameters", "parameter": [{"name": "appt-resource", "resource": appointment}]}


proposal = {"resourceType": "Appointment", "status": "proposed", "slot": [{"reference": f"Slot/{slot['id']}"}],
            "participant": [{"actor": {"reference": sched["actor"][0]["reference"]}, "status": "needs-action"}],
            "reasonCode": [{"text": "check-up via FHIR"}]}
held = fhir.execute("Appointment/$hold", method="post", data=parameters(proposal))
validate(held)
held_appt = held["entry"][0]["resource"]
assert held_appt["status"] == "pending", held_appt["status"]
assert fhir.reference("Slot", slot["id"]).to_resource()["status"] == "busy-tentative"

key = str(uuid.uuid4())
booking = SyncFHIRClient(BASE, authorization=f"Bearer {TOKEN}", extra_headers={"Idempotency-Key": key})
booked = booking.execute("Appointment/$book", method="post", data=parameters(proposal))
again = booking.execute("Appointment/$book", method="post", data=parameters(proposal))
validate(booked)
appt = booked["entry"][0]["resource"]
assert appt["status"] == "booked" and appt["id"] == held_appt["id"], "the hold became the booking"
assert again["entry"][0]["resource"]["id"] == appt["id"], "a retry with the same Idempotency-Key books once"
assert appt["slot"][0]["reference"] == f"Slot/{slot['id']}"
assert fhir.reference("Appointment", appt["id"]).to_resource()["status"] == "booked"
assert fhir.reference("Slot", slot["id"]).to_resource()["status"] == "busy"

try:
    other.execute("Appointment/$book", method="post", data=parameters(proposal))
    raise AssertionError("a taken slot was booked twice")
except OperationOutcome as e:
    issues = e.resource["issue"]
    validate(e.resource)
    assert issues[0]["code"] == "conflict", issues
    assert any(i["severity"] == "information" and "Slot/" in i["diagnostics"] for i in issues), "alternatives offered"
try:
    other.reference("Appointment", appt["id"]).to_resource()
    raise AssertionError("another patient read this appointment")
except ResourceNotFound:
    pass

cancel = dict(appt, status="cancelled", cancelationReason={"text": "feeling better"})
cancelled = fhir.execute("Appointment/$book", method="post", data=parameters(cancel))
validate(cancelled)
assert cancelled["entry"][0]["resource"]["status"] == "cancelled"
assert cancelled["entry"][0]["resource"]["cancelationReason"]["text"] == "feeling better"
assert fhir.reference("Slot", slot["id"]).to_resource()["status"] == "free", "the slot is free again"

# 3. SMART Scheduling Links.
def ndjson(url, **headers):
    r = requests.get(url, headers=headers, timeout=300)
    assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/fhir+ndjson", r.headers["content-type"]
    out = []
    for n, text in enumerate(r.text.splitlines()):
        res = json.loads(text)  # one resource per line
        validate(res)
        out.append(res)
    return out, r


m = requests.get(f"{BASE}/$bulk-publish", timeout=60)
assert m.status_code == 200, m.text
manifest = m.json()
datetime.datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
assert manifest["error"] == [] and manifest["request"].endswith("/$bulk-publish")
urls = {o["type"]: o["url"] for o in manifest["output"]}
assert set(urls) == {"Location", "Schedule", "Slot"}, urls
locations, _ = ndjson(urls["Location"])
schedules_pub, _ = ndjson(urls["Schedule"])
location_ids = {f"Location/{l['id']}" for l in locations}
# Once published, each output names the states its clinics are in (the demo's:
# Île-de-France, Auvergne-Rhône-Alpes, New York); the Slots come in one file per state.
outputs = requests.get(f"{BASE}/$bulk-publish", timeout=60).json()["output"]
for o in outputs:
    if o["type"] != "Slot":
        assert o["extension"]["state"] == ["ARA", "IDF", "NY"], o
slot_files = {o["extension"]["state"][0]: o["url"] for o in outputs if o["type"] == "Slot"}
assert set(slot_files) == {"ARA", "IDF", "NY"} and all(u.endswith("-1.ndjson") for u in slot_files.values()), slot_files
slots_pub = []
for state, url in sorted(slot_files.items()):
    part, _ = ndjson(url)
    slots_pub += part
# Slot.ndjson is every Slot file at once, for readers that want them all.
SLOT_ALL = f"{BASE}/$bulk-publish/Slot.ndjson"
whole, slot_resp = ndjson(SLOT_ALL)
assert sorted(json.dumps(x, sort_keys=True) for x in whole) == sorted(json.dumps(x, sort_keys=True) for x in slots_pub)
# What slot finders show and filter by: every demo clinic's structured address and phone.
for l in locations:
    a = l["address"]
    assert a["line"] and a["city"] and a["state"] and a["postalCode"] and len(a["country"]) == 2, f"Location {l['id']}: {a}"
    assert any(t["system"] == "phone" and t["value"].startswith("+") for t in l["telecom"]), f"Location {l['id']}"
    assert l["identifier"][0]["value"] == l["id"], f"Location {l['id']}: {l.get('identifier')}"
schedule_ids = {f"Schedule/{s['id']}" for s in schedules_pub}
for sc in schedules_pub:
    assert sc["actor"][0]["reference"] in location_ids, f"Schedule {sc['id']}: the first actor is not a published Location"
    hl7 = [c for t in sc["serviceType"] for c in t["coding"] if c["system"] == "http://terminology.hl7.org/CodeSystem/service-type"]
    assert hl7 and all(c["code"].isdigit() and c["display"] for c in hl7), f"Schedule {sc['id']}: no HL7 service type"
links = {}
for sl in slots_pub:
    assert sl["schedule"]["reference"] in schedule_ids, f"Slot {sl['id']} references no published Schedule"
    assert sl["status"] in ("free", "busy")
    for ext in sl.get("extension", []):
        if ext["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link":
            links[sl["id"]] = ext["valueUrl"]
assert links and all(sl["id"] in links for sl in slots_pub if sl["status"] == "free"), "every free slot has a deep link"
published = {"locations": len(locations), "schedules": len(schedules_pub), "slots": len(slots_pub)}

# Conditional requests: the same validators answer 304, with no body.
etag, modified = slot_resp.headers["etag"], slot_resp.headers["last-modified"]
assert requests.get(SLOT_ALL, headers={"If-None-Match": etag}, timeout=60).status_code == 304
assert requests.get(SLOT_ALL, headers={"If-Modified-Since": modified}, timeout=60).status_code == 304
part_url = slot_files["NY"]
part_etag = requests.get(part_url, timeout=60).headers["etag"]
assert part_etag != etag and requests.get(part_url, headers={"If-None-Match": part_etag}, timeout=60).status_code == 304
assert requests.get(f"{BASE}/$bulk-publish", headers={"If-None-Match": m.headers["etag"]}, timeout=60).status_code == 304

# The deep link opens the booking page; signing in and booking books exactly that slot.
time.sleep(2)  # the changes above are then older than `before` (change times are kept to the second)
before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
target = next(sl for sl in slots_pub if sl["status"] == "free" and sl["start"] > found["entry"][-1]["resource"]["start"])
web = requests.Session()
pageh = web.get(links[target["id"]], timeout=60)
assert pageh.status_code == 200 and "Sign in to book" in pageh.text, pageh.text[:500]
csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', pageh.text).group(1)
r = web.post(links[target["id"]], data={"csrf": csrf, "action": "login", "email": EMAIL, "password": PASSWORD}, timeout=60)
assert r.status_code == 200 and "Hold this slot" in r.text, r.text[:500]
r = web.post(links[target["id"]], data={"csrf": csrf, "action": "hold"}, timeout=60)
assert r.status_code == 200 and "/holds/" in r.url and "Confirm booking" in r.text, r.text[:500]
key = re.search(r'name="key" value="([^"]+)"', r.text).group(1)
r = web.post(r.url, data={"csrf": csrf, "key": key, "reason": "deep link"}, timeout=60)
assert r.status_code == 200 and "Your appointment is booked" in r.text, r.text[:500]
booked_id = r.url.rsplit("/", 1)[1]
via_link = get(f"Appointment/{booked_id}", TOKEN)
assert via_link["slot"][0]["reference"] == f"Slot/{target['id']}", "the deep link booked exactly that slot"
assert via_link["start"] == target["start"] and via_link["status"] == "booked"
# A second visit to the link: taken, with the nearest free slots offered.
again_page = requests.get(links[target["id"]], timeout=60)
assert again_page.status_code == 409 and "just taken" in again_page.text and "/book/slot_" in again_page.text

# `_since`: what changed since before the booking, with the booked slot now busy.
since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
changed, _ = ndjson(f"{SLOT_ALL}?_since={since}")
assert any(sl["id"] == target["id"] and sl["status"] == "busy" for sl in changed), "the booked slot is reported busy"
assert len(changed) < len(slots_pub), "_since returns only what changed"
future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
assert ndjson(f"{SLOT_ALL}?_since={future}")[0] == []

if DUMP:
    DUMP.close()
print(json.dumps({"validated": dict(sorted(counts.items())), "slots": dict(slot_statuses), "published": published, "fhirpy": "ok", "deep_link": "ok"}))
