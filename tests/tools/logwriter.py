#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes numbered log lines the way real servers do, for the integration tests.

  logwriter.py write FILE FIRST COUNT [--rate N] [--pad N] [--random]
      appends lines FIRST..FIRST+COUNT-1 ("line NNNNNNNN <padding>") to FILE;
      --random pads with incompressible base64
  logwriter.py rotate FILE FIRST COUNT --at K [--after N]
      writes, and after K lines renames FILE to FILE.1 while keeping the old
      descriptor for N more lines (a server not yet told to reopen), then
      creates a new FILE for the rest
  logwriter.py rotate-many FILE FIRST COUNT --every K [--after N]
      writes, and every K lines renames FILE to FILE.<n> (n = 1, 2, ...),
      writes N more lines to the renamed file, then creates a new FILE; no
      pause in between
  logwriter.py copytruncate FILE FIRST COUNT --at K --wait-cmd CMD
      writes K lines, runs CMD until it succeeds (e.g. until the agent has
      them), copies FILE to FILE.1, truncates FILE and at once writes the rest
  logwriter.py check DUMP FIRST COUNT
      reads a --spool-dump, checks that lines FIRST..FIRST+COUNT-1 are there
      exactly once each and nothing else; prints what is missing or doubled
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time


RANDOM_PAD = False


def line(n, pad):
    if RANDOM_PAD:
        return ("line %08d %s\n" % (n, base64.b64encode(os.urandom(pad * 3 // 4)).decode())).encode()
    return ("line %08d %s\n" % (n, "x" * pad)).encode()


def paced(f, first, count, rate, pad):
    start = time.monotonic()
    for i in range(count):
        f.write(line(first + i, pad))
        if rate and i % 100 == 99:
            f.flush()
            ahead = (i + 1) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    f.flush()


def wait_for(cmd):
    deadline = time.monotonic() + 30
    while subprocess.call(cmd, shell=True) != 0:
        if time.monotonic() > deadline:
            sys.exit("the wait command never succeeded: " + cmd)
        time.sleep(0.01)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("file")
    p.add_argument("first", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--at", type=int, default=0)
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--every", type=int, default=0)
    p.add_argument("--pad", type=int, default=40)
    p.add_argument("--wait-cmd", default="")
    p.add_argument("--random", action="store_true", help="incompressible padding")
    a = p.parse_args()
    global RANDOM_PAD
    RANDOM_PAD = a.random

    if a.mode == "write":
        with open(a.file, "ab", buffering=0) as f:
            paced(f, a.first, a.count, a.rate, a.pad)
    elif a.mode == "rotate":
        f = open(a.file, "ab", buffering=0)
        paced(f, a.first, a.at, a.rate, a.pad)
        os.rename(a.file, a.file + ".1")
        paced(f, a.first + a.at, a.after, a.rate, a.pad)
        f.close()
        with open(a.file, "ab", buffering=0) as g:
            done = a.at + a.after
            paced(g, a.first + done, a.count - done, a.rate, a.pad)
    elif a.mode == "rotate-many":
        f = open(a.file, "ab", buffering=0)
        done = 0
        n = 1
        while done < a.count:
            k = min(a.every, a.count - done)
            paced(f, a.first + done, k, a.rate, a.pad)
            done += k
            if done >= a.count:
                break
            os.rename(a.file, "%s.%d" % (a.file, n))
            k = min(a.after, a.count - done)
            paced(f, a.first + done, k, a.rate, a.pad)
            done += k
            f.close()
            f = open(a.file, "ab", buffering=0)
            n += 1
        f.close()
        print("%d files" % n)
    elif a.mode == "copytruncate":
        with open(a.file, "ab", buffering=0) as f:
            paced(f, a.first, a.at, a.rate, a.pad)
            wait_for(a.wait_cmd)
            shutil.copyfile(a.file, a.file + ".1")
            f.truncate(0)
            # O_APPEND: the next write lands at the new end, 0.
            paced(f, a.first + a.at, a.count - a.at, a.rate, a.pad)
    elif a.mode == "check":
        seen = {}
        other = 0
        with open(a.file, "rb") as d:
            for raw in d:
                ev = json.loads(raw)
                msg = ev["message"]
                if not msg.startswith("line "):
                    other += 1
                    continue
                n = int(msg.split()[1])
                seen[n] = seen.get(n, 0) + 1
        want = range(a.first, a.first + a.count)
        missing = [n for n in want if n not in seen]
        doubled = [n for n, c in seen.items() if c > 1]
        extra = [n for n in seen if n < a.first or n >= a.first + a.count]
        ok = not missing and not doubled and not extra and other == 0
        print("%d lines: %d missing, %d doubled, %d unexpected, %d others" %
              (a.count, len(missing), len(doubled), len(extra), other))
        if missing:
            print("missing:", missing[:10])
        if doubled:
            print("doubled:", sorted(doubled)[:10])
        sys.exit(0 if ok else 1)
    else:
        sys.exit("unknown mode " + a.mode)


if __name__ == "__main__":
    main()
