"""gRPC (grpcio) and HTTP (http.server) providers whose behaviour a test chooses, for the proxy's
resilience tests (retries, per-try timeouts, mirroring, isolation).

Usage: flaky_server.py grpc|http HOST PORT NAME MODE
MODE is one of:
  ok           answer at once (gRPC: the reply is NAME; HTTP: 200 with body NAME)
  fail         gRPC: UNAVAILABLE; HTTP: 503
  slow:MS      wait MS milliseconds, then answer as `ok`
It prints "READY" once serving. Every request is counted; the count is read without touching
the count itself: gRPC `/demo.Greeter/Count` answers `{"requests": n, "authorities": [...],
"bodies": [...]}` as JSON bytes, HTTP `GET /__count` the same JSON. `authorities` are the last
requests' `Host` headers (HTTP only: grpcio does not show a server the authority), `bodies` the
last request bodies (UTF-8).
"""
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

KEEP = 20


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.authorities = []
        self.bodies = []

    def add(self, authority, body):
        with self.lock:
            self.requests += 1
            self.authorities = (self.authorities + [authority])[-KEEP:]
            self.bodies = (self.bodies + [body.decode("utf-8", "replace")])[-KEEP:]

    def json(self):
        with self.lock:
            return json.dumps(
                {"requests": self.requests, "authorities": self.authorities, "bodies": self.bodies}
            ).encode()


def behave(mode):
    """Sleeps for `slow:MS`; returns whether the request must fail."""
    if mode.startswith("slow:"):
        time.sleep(int(mode[len("slow:"):]) / 1000.0)
    return mode == "fail"


def serve_grpc(host, port, name, mode, counter):
    def say_hello(request, context):
        counter.add("", request)
        if behave(mode):
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{name} is failing on purpose")
        return name.encode()

    def count(request, context):
        return counter.json()

    handler = grpc.method_handlers_generic_handler(
        "demo.Greeter",
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
            "Count": grpc.unary_unary_rpc_method_handler(count),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


def serve_http(host, port, name, mode, counter):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/__count":
                self.reply(200, counter.json())
                return
            counter.add(self.headers.get("Host", ""), body)
            if behave(mode):
                self.reply(503, f"{name} is failing on purpose".encode())
            else:
                self.reply(200, name.encode())

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = answer
        do_POST = answer

        def log_message(self, *args):
            pass

    # Bursts of connections from the proxy must not overflow the default backlog of 5.
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print("READY", flush=True)
    server.serve_forever()


def main() -> int:
    kind, host, port, name, mode = sys.argv[1:6]
    counter = Counter()
    if kind == "grpc":
        serve_grpc(host, int(port), name, mode, counter)
    else:
        serve_http(host, int(port), name, mode, counter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
