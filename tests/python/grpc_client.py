"""A plain gRPC client (grpcio) for calls through causeway-proxy.

Usage: grpc_client.py TARGET CALLS [--path=/pkg.Service/Method] [--authority=HOST[:PORT]]
                      [--parallel] [NAME=VALUE ...]
It makes CALLS unary calls (raw bytes, no generated code) on one channel, one after the other or,
with --parallel, all at once; it sends each NAME=VALUE as metadata, and prints one JSON line:
{"counts": {reply: n}, "errors": n, "codes": {code: n}, "last_error": s}.
"""
import json
import sys
from collections import Counter

import grpc


def main() -> int:
    target, calls = sys.argv[1], int(sys.argv[2])
    path, options, metadata, parallel = "/demo.Greeter/SayHello", [], [], False
    for arg in sys.argv[3:]:
        if arg == "--parallel":
            parallel = True
        elif arg.startswith("--path="):
            path = arg[len("--path="):]
        elif arg.startswith("--authority="):
            # The authority the proxy routes by; without it the channel sends TARGET.
            options.append(("grpc.default_authority", arg[len("--authority="):]))
        else:
            name, value = arg.split("=", 1)
            metadata.append((name, value))
    channel = grpc.insecure_channel(target, options=options)
    call = channel.unary_unary(path)
    counts, codes, errors, last_error = Counter(), Counter(), 0, ""
    if parallel:
        pending = [call.future(b"hi", metadata=metadata, timeout=10) for _ in range(calls)]
        results = (future.result for future in pending)
    else:
        results = (lambda: call(b"hi", metadata=metadata, timeout=10) for _ in range(calls))
    for result in results:
        try:
            counts[result().decode()] += 1
            codes["OK"] += 1
        except grpc.RpcError as error:
            errors += 1
            codes[error.code().name] += 1
            last_error = f"{error.code().name}: {error.details()}"
    channel.close()
    print(json.dumps({"counts": counts, "errors": errors, "codes": codes, "last_error": last_error}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
