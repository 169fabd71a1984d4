"""A real SMTP server for the tests (aiosmtpd): every message it receives is
written, as received, to DIR/<n>.eml. Prints "ready" once it listens.

usage: smtp_sink.py HOST PORT DIR"""

import itertools
import os
import sys
import time

from aiosmtpd.controller import Controller

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
counter = itertools.count(1)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        tmp = os.path.join(out, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(out, f"{n:06}.eml"))
        return "250 Message accepted for delivery"


controller = Controller(Sink(), hostname=host, port=port)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
