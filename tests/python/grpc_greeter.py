"""A plain gRPC server (grpcio) answering /demo.Greeter/SayHello with its own version name.

Usage: grpc_greeter.py HOST PORT VERSION
It prints "READY" once serving. Requests and responses are raw bytes (no generated code), so the
tests need no protoc. A call carrying a `traceparent` is answered with "VERSION TRACEPARENT", so a
test sees the trace context the provider received.
"""
import sys
from concurrent import futures

import grpc


def main() -> int:
    host, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def say_hello(request, context):
        traceparent = dict(context.invocation_metadata()).get("traceparent")
        if traceparent:
            return f"{version} {traceparent}".encode()
        return version.encode()

    handler = grpc.method_handlers_generic_handler(
        "demo.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
