"""A minimal OTLP/HTTP trace receiver for causeway's span-export test.

Listens on 127.0.0.1:PORT, accepts POST /v1/traces with Content-Type application/x-protobuf,
decodes the body with the official opentelemetry-proto bindings and appends one JSON line per
span to OUT (ids as lower-case hex). Anything else gets 400 or 404 and is logged to stderr.

Usage: receiver.py PORT OUT
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        if self.headers.get("Content-Type") != "application/x-protobuf":
            print("bad content type", self.headers.get("Content-Type"), file=sys.stderr)
            self.send_error(400)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        lines = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: value_of(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": Span.SpanKind.Name(span.kind),
                                "start": span.start_time_unix_nano,
                                "end": span.end_time_unix_nano,
                                "status": span.status.code,
                                "attributes": {kv.key: value_of(kv.value) for kv in span.attributes},
                            }
                        )
                    )
        with open(self.out, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):
        pass


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    Handler.out = out
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("READY", port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
