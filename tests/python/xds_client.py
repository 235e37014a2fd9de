"""A proxyless gRPC client (grpcio's own xDS resolver and balancers) driven over stdin.

Usage: GRPC_XDS_BOOTSTRAP=bootstrap.json xds_client.py xds:///HOST:PORT
Each stdin line is a number N: the client makes N calls to /demo.Greeter/SayHello on the one
long-lived channel and prints one JSON line {"counts": {version: n}, "errors": n, "last_error": s}.
Keeping one channel across batches is the point: routing changes must reach it without a restart.
"""
import json
import sys
from collections import Counter

import grpc


def main() -> int:
    channel = grpc.insecure_channel(sys.argv[1])
    say_hello = channel.unary_unary("/demo.Greeter/SayHello")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        counts, errors, last_error = Counter(), 0, ""
        for _ in range(int(line)):
            try:
                counts[say_hello(b"hi", timeout=5).decode()] += 1
            except grpc.RpcError as error:
                errors += 1
                last_error = f"{error.code().name}: {error.details()}"
        print(json.dumps({"counts": counts, "errors": errors, "last_error": last_error}), flush=True)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
