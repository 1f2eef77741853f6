#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""nginx_log.py OUT N [--rid]: writes N NGINX combined lines to OUT, the same
for every run (seeded), for the benchmarks. With --rid each request path ends
with its line number (?rid=N or &rid=N), so that every line can be counted
once where it arrives."""
import random, sys
random.seed(1)
paths = ["/", "/index.html", "/api/v1/items", "/api/v1/items/%d", "/static/app.%d.js",
         "/search?q=term%d", "/login", "/cart/%d/checkout"]
agents = ["curl/8.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
          "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
          "Go-http-client/1.1", "python-requests/2.31"]
rid = "--rid" in sys.argv[3:]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        p = random.choice(paths)
        if "%d" in p:
            p = p % random.randrange(100000)
        if rid:
            p += ("&" if "?" in p else "?") + "rid=%d" % i
        s = i // 1000
        f.write('%d.%d.%d.%d - %s [22/Nov/2026:%02d:%02d:%02d +0000] "%s %s HTTP/1.1" %d %d "%s" "%s"\n' % (
            random.randrange(1, 255), random.randrange(256), random.randrange(256), random.randrange(1, 255),
            random.choice(["-", "-", "-", "alice"]), s // 3600 % 24, s // 60 % 60, s % 60,
            random.choice(["GET", "GET", "GET", "POST"]), p, random.choice([200, 200, 200, 304, 404, 500]),
            random.randrange(50000), random.choice(["-", "https://www.example.com/", "https://www.example.com/search?q=shoes&page=2"]), random.choice(agents)))
