"""Parses iCalendar text with the strict `ical` library (RFC 5545, RFC 6868
parameter escapes), which refuses what lenient parsers let through.

usage: ics_strict.py FILE...   (an .ics file, or an .eml whose text/calendar
parts are read). Prints JSON: one object per calendar, with its PRODID and
METHOD and, per event, the summary, location, organizer's and attendees'
names; a calendar that does not parse is reported with its error and the
script exits 1."""

import email
import email.policy
import json
import sys

from ical.calendar_stream import IcsCalendarStream
from ical.exceptions import CalendarParseError


def calendars(path):
    with open(path, "rb") as f:
        raw = f.read()
    if not path.endswith(".eml"):
        yield raw.decode("utf-8")
        return
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            yield part.get_content()


out, failed = [], False
for path in sys.argv[1:]:
    for text in calendars(path):
        try:
            cal = IcsCalendarStream.calendar_from_ics(text)
        except CalendarParseError as e:
            failed = True
            out.append({"file": path, "error": str(e), "detail": str(getattr(e, "detailed_error", ""))})
            continue
        out.append({
            "file": path,
            "prodid": cal.prodid,
            "method": cal.method,
            "events": [{
                "summary": e.summary,
                "location": e.location,
                "organizer": e.organizer.common_name if e.organizer else None,
                "attendees": [a.common_name for a in e.attendees],
            } for e in cal.events],
        })
print(json.dumps(out))
sys.exit(1 if failed else 0)
