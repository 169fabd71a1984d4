"""Parses an iCalendar file from stdin with the independent `icalendar`
library and prints what a calendar app would use, as JSON."""

import json
import sys

from icalendar import Calendar

cal = Calendar.from_ical(sys.stdin.read())
events = [c for c in cal.walk() if c.name == "VEVENT"]
assert len(events) == 1, f"one event, found {len(events)}"
e = events[0]
print(json.dumps({
    "method": str(cal.get("METHOD")),
    "uid": str(e.get("UID")),
    "sequence": int(e.get("SEQUENCE", 0)),
    "start": e.decoded("DTSTART").isoformat(),
    "end": e.decoded("DTEND").isoformat(),
    "status": str(e.get("STATUS")),
    "summary": str(e.get("SUMMARY")),
    "location": str(e.get("LOCATION")),
}))
