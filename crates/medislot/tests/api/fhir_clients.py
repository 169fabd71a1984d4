"""Clients nobody here wrote, against medislot's FHIR facade.

1. Every resource the facade returns over the demo data set is validated
   with the independent FHIR R4 model library `fhir.resources` (4.0.1).
2. The `fhirpy` client searches free slots, holds, books (idempotently),
   reads, is refused a taken slot, and cancels through `$book`.

Usage: fhir_clients.py BASE_URL PATIENT_TOKEN OTHER_PATIENT_TOKEN
Prints a JSON summary; exits non-zero on the first failure.
"""

import collections
import json
import sys
import uuid

import requests
from fhir.resources import construct_fhir_element, __fhir_version__
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

BASE, TOKEN, OTHER = sys.argv[1:4]
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


def validate(resource):
    """Validates one resource (and a Bundle's entries) with fhir.resources."""
    kind = resource["resourceType"]
    construct_fhir_element(kind, resource)  # raises on anything invalid
    check_codes(resource)
    counts[kind] += 1
    for entry in resource.get("entry", []) if kind == "Bundle" else []:
        validate(entry["resource"])


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
for appt in mine:
    get(f"Appointment/{appt['id']}", TOKEN)
    patient = [p["actor"]["reference"] for p in appt["participant"] if p["actor"]["reference"].startswith("Patient/")]
    assert len(set(patient)) == 1, "one patient per appointment"
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

print(json.dumps({"validated": dict(sorted(counts.items())), "slots": dict(slot_statuses), "fhirpy": "ok"}))
