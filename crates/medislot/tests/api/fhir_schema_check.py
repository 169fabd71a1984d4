"""Validates FHIR resources against HL7's R4 JSON Schema (fhir.schema.json),
with jsonschema-rs: a second validator, besides fhir.resources, that knows
nothing of this project.

Usage: fhir_schema_check.py RESOURCES.ndjson fhir.schema.json
RESOURCES.ndjson holds one resource per line (fhir_clients.py writes every
resource it read). Prints {"checked": {kind: count}} or the failures.
"""

import collections
import json
import sys

import jsonschema_rs

dump, schema_path = sys.argv[1:3]
with open(schema_path) as f:
    schema = json.load(f)
assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0", schema["id"]
# This is the schema HL7 published with R4 (4.0.0). The 4.0.1 technical
# correction, which the facade speaks, adds its own number to the FHIR versions
# a CapabilityStatement may name; the definitions of the resources served here
# are otherwise the same in both.
versions = schema["definitions"]["CapabilityStatement"]["properties"]["fhirVersion"]["enum"]
assert versions[-1] == "4.0.0", versions
versions.append("4.0.1")
validator = jsonschema_rs.Draft6Validator(schema)
# The root schema is a oneOf over every resource type, whose error names no
# field: a refused resource is checked again against its own type's definition.
by_kind = {}


def precise_errors(resource):
    kind = resource.get("resourceType", "?")
    if kind not in schema["definitions"]:
        return [f"unknown resourceType {kind!r}"]
    if kind not in by_kind:
        by_kind[kind] = jsonschema_rs.Draft6Validator({**schema, "oneOf": [{"$ref": f"#/definitions/{kind}"}]})
    errors = list(by_kind[kind].iter_errors(resource))
    return [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message[:300]}" for e in errors[:5]]


# The validator itself must refuse what R4 refuses, or passing means nothing.
for bad in (
    {"resourceType": "Slot", "schedule": {"reference": "Schedule/1"}, "status": "open",
     "start": "2026-01-01T09:00:00Z", "end": "2026-01-01T09:30:00Z"},
    {"resourceType": "Appointment", "status": "booked", "participant": [{"status": "accepted"}], "minutesDuration": "30"},
    {"resourceType": "Location", "telecom": [{"system": "phone", "value": 5}]},
):
    assert not validator.is_valid(bad), f"fhir.schema.json accepted an invalid resource: {bad}"

counts = collections.Counter()
failures = []
with open(dump) as f:
    for n, line in enumerate(f, 1):
        resource = json.loads(line)
        kind = resource.get("resourceType", "?")
        if not validator.is_valid(resource):
            detail = "; ".join(precise_errors(resource))
            failures.append(f"line {n} ({kind} {resource.get('id', '')}): {detail}")
        counts[kind] += 1
        for entry in resource.get("entry", []) if kind == "Bundle" else []:
            counts[entry["resource"]["resourceType"]] += 1

if failures:
    print(f"{len(failures)} of {n} resources fail fhir.schema.json:", *failures[:20], sep="\n")
    sys.exit(1)
print(json.dumps({"checked": dict(sorted(counts.items()))}))
