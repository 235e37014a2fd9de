//! Dubbo 2 framing: the 16-byte header, request and response views, and builders.
