"""Reads every e-mail in a directory with Python's own e-mail parser and its
calendar part with the independent `icalendar` library; prints JSON, one
object per message: to, subject, message_id, text, and the invitation
(method, uid, sequence, start, end, status, organizer, attendee, location,
url).

usage: mail_check.py DIR"""

import email
import email.policy
import json
import os
import sys

from icalendar import Calendar

out = []
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    if not name.endswith(".eml"):
        continue
    with open(os.path.join(folder, name), "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    text, invite = None, None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "text/plain" and text is None:
            text = part.get_content()
        elif ctype == "text/calendar":
            cal = Calendar.from_ical(part.get_content())
            events = [c for c in cal.walk() if c.name == "VEVENT"]
            assert len(events) == 1, f"{name}: one event, found {len(events)}"
            e = events[0]
            invite = {
                "method": str(cal.get("METHOD")),
                "content_type_method": part.get_param("method"),
                "uid": str(e.get("UID")),
                "sequence": int(e.get("SEQUENCE", 0)),
                "start": e.decoded("DTSTART").isoformat(),
                "end": e.decoded("DTEND").isoformat(),
                "status": str(e.get("STATUS")),
                "organizer": str(e.get("ORGANIZER")),
                "attendee": str(e.get("ATTENDEE")),
                "location": str(e.get("LOCATION")) if e.get("LOCATION") is not None else None,
                "url": str(e.get("URL")) if e.get("URL") is not None else None,
            }
    out.append({
        "file": name,
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "message_id": str(msg["Message-ID"]),
        "text": text,
        "invite": invite,
    })
print(json.dumps(out))
