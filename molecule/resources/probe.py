"""Traffic probe run ON a test host during a deploy: GET the URL every PERIOD
seconds until STOPFILE exists, then write a JSON summary to OUTFILE:
{"answers": N, "failures": [[status or error, color, release], ...],
 "seen": {"<status> <color> <release>": count}}.

Usage: probe.py URL OUTFILE STOPFILE [PERIOD]
(The test hosts share this machine's filesystem, so the scenarios run it in place.)
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def main():
    url, outfile, stopfile = sys.argv[1:4]
    period = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    deadline = time.monotonic() + 900
    answers, failures, seen = 0, [], {}
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = json.load(reply)
                key = (reply.status, body.get("color"), body.get("release"))
        except urllib.error.HTTPError as exc:
            key = (exc.code, None, None)
        except (OSError, ValueError) as exc:
            key = (type(exc).__name__, None, None)
        answers += 1
        label = " ".join(str(part) for part in key)
        seen[label] = seen.get(label, 0) + 1
        if key[0] != 200:
            failures.append(list(key))
        time.sleep(period)
    with open(outfile + ".part", "w", encoding="utf-8") as handle:
        json.dump({"answers": answers, "failures": failures[:50], "seen": seen}, handle)
    os.replace(outfile + ".part", outfile)


if __name__ == "__main__":
    main()
