#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""intake_client: posts EVENTS events, REQ per request, to a relay's HTTP
intake over HTTPS, each event {"id": N, "req": R}; a request answered 503
is retried whole after its Retry-After, as a REST client of the relay is
told to. Writes one line per request: "R STATUS ATTEMPTS" (the final
status, and how many times it was sent), for the test to compare with
what Kafka holds.

Usage: intake_client.py URL TOKEN CAFILE EVENTS REQ OUT

The client never waits on the test: the test acts on the Kafka cluster
while it posts, and reads OUT as it grows.
"""
import http.client
import json
import ssl
import sys
import time
import urllib.parse


def main():
    url, token, cafile, events, per, out = sys.argv[1:7]
    events, per = int(events), int(per)
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    conn = None
    with open(out, "w") as f:
        for r in range(events // per):
            body = "".join(json.dumps({"id": r * per + i, "req": r}) + "\n"
                           for i in range(per)).encode()
            attempts = 0
            while True:
                attempts += 1
                try:
                    if conn is None:
                        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx,
                                                           timeout=60)
                    conn.request("POST", "/v1/events", body, {
                        "Authorization": "Bearer " + token,
                        "Content-Type": "application/x-ndjson"})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    retry = int(resp.getheader("Retry-After", "1"))
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    # A connection lost mid-request is a request not answered 200: retried.
                    if conn is not None:
                        conn.close()
                    conn = None
                    status, retry = 0, 1
                if status == 200 or attempts >= 120:
                    break
                time.sleep(retry)
            f.write("%d %d %d\n" % (r, status, attempts))
            f.flush()


main()
