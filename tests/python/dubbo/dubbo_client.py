"""Calls io.causeway.demo.api.GreetingService at HOST:PORT with dubbo-python (a Python Dubbo
client written by others) and prints one JSON line: answers per method and serving version.

usage: dubbo_client.py HOST:PORT CALLS METHOD[,METHOD...]
"""

import json
import re
import sys

from dubbo.client import DubboClient

INTERFACE = "io.causeway.demo.api.GreetingService"
# "Hello, python (from v2 in zone-a on port 20880)" or "... (from v2 on port 20880)"
SERVED_BY = re.compile(r"\(from (\S+)")


def arguments(method):
    # slow(String name, int millis); the rest take a name.
    return ["python", 0] if method == "slow" else "python"


def main():
    target, calls, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    client = DubboClient(INTERFACE, host=target, version="1.0.0")
    counts, failed, first_error = {}, 0, None
    for _ in range(calls):
        for method in methods:
            try:
                answer = client.call(method, arguments(method))
                match = SERVED_BY.search(str(answer))
                key = "%s %s" % (method, match.group(1) if match else "?")
                counts[key] = counts.get(key, 0) + 1
            except Exception as error:  # every failure is counted and the first one shown
                failed += 1
                if first_error is None:
                    first_error = "%s: %s" % (type(error).__name__, error)
    print(json.dumps({"counts": counts, "failed": failed, "first_error": first_error}))


if __name__ == "__main__":
    main()
