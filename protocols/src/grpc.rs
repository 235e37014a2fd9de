//! gRPC over HTTP/2: message framing, paths and trailers-only errors.
