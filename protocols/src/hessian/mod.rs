//! Hessian 2.0 serialization: value model, decoder and Java-compatible encoder.
