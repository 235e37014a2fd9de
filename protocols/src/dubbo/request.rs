//! Zero-copy reading of a Hessian 2 request body (PROTOCOLS.md §1.6): the five leading strings,
//! the argument count from the JVM descriptor, and the attachments reached by skipping the
//! arguments without building them.

use std::borrow::Cow;
use std::ops::Range;

use crate::hessian::{Decoder, Value};

use super::error::DubboError;

/// A request body read in place. Construction reads only the five leading strings (dubbo
/// version, service path, service version, method, parameter descriptor), which is all routing by
/// interface and method needs; arguments and attachments are read on demand.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    body: &'a [u8],
    dubbo_version: Cow<'a, str>,
    service: Cow<'a, str>,
    service_version: Option<Cow<'a, str>>,
    method: Cow<'a, str>,
    param_types: Cow<'a, str>,
    args_offset: usize,
}

/// The attachments map of a request or response, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachments<'a> {
    entries: Vec<(Cow<'a, str>, AttachmentValue<'a>)>,
    span: Option<Range<usize>>,
}

/// One attachment value: usually a string, but Dubbo allows any object (e.g. `_TO` is an int).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentValue<'a> {
    /// A string, borrowed from the body when possible.
    Str(Cow<'a, str>),
    /// `null`.
    Null,
    /// Any other value, fully decoded.
    Other(Value),
}

/// Method names of generic calls (`RpcUtils.isGenericCall`).
const GENERIC_METHODS: [&str; 2] = ["$invoke", "$invokeAsync"];
/// The descriptor of a generic call: `(String method, String[] types, Object[] args)`.
const GENERIC_DESCRIPTOR: &str = "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;";

// === impl RequestView ===

impl<'a> RequestView<'a> {
    /// Reads the leading strings of a Hessian 2 request body. `null` in place of the dubbo
    /// version, service, method or descriptor reads as an empty string.
    pub fn parse(body: &'a [u8]) -> Result<Self, DubboError> {
        let mut d = Decoder::new(body);
        let dubbo_version = leading_str(&mut d, "dubbo version")?.unwrap_or_default();
        let service = leading_str(&mut d, "service path")?.unwrap_or_default();
        let service_version = leading_str(&mut d, "service version")?;
        let method = leading_str(&mut d, "method name")?.unwrap_or_default();
        let param_types = leading_str(&mut d, "parameter types")?.unwrap_or_default();
        Ok(Self {
            body,
            dubbo_version,
            service,
            service_version,
            method,
            param_types,
            args_offset: d.position(),
        })
    }

    /// The Dubbo protocol version (`"2.0.2"` for every release since 2.6.3).
    pub fn dubbo_version(&self) -> &str {
        &self.dubbo_version
    }

    /// The service path, normally the interface name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service version (`"0.0.0"` when the reference has none); `None` if the body says
    /// `null`.
    pub fn service_version(&self) -> Option<&str> {
        self.service_version.as_deref()
    }

    /// The method name (`$invoke` for generic calls, see [`generic_method`](Self::generic_method)).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The parameter-types descriptor, e.g. `Ljava/lang/String;[I`.
    pub fn param_types(&self) -> &str {
        &self.param_types
    }

    /// The number of arguments, from the descriptor.
    pub fn argument_count(&self) -> Result<usize, DubboError> {
        argument_count(&self.param_types)
    }

    /// Offset in the body where the arguments start.
    pub fn arguments_offset(&self) -> usize {
        self.args_offset
    }

    /// The body this view reads.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// `true` for a generic call (`$invoke`/`$invokeAsync` with the generic descriptor).
    pub fn is_generic(&self) -> bool {
        GENERIC_METHODS.contains(&self.method()) && self.param_types() == GENERIC_DESCRIPTOR
    }

    /// For a generic call, the real method name (its first argument); `None` otherwise.
    pub fn generic_method(&self) -> Result<Option<Cow<'a, str>>, DubboError> {
        if !self.is_generic() {
            return Ok(None);
        }
        let mut d = Decoder::starting_at(self.body, self.args_offset);
        d.read_str()
            .map_err(DubboError::body("generic method name"))
    }

    /// Decodes every argument (off the hot path: this builds the values).
    pub fn arguments(&self) -> Result<Vec<Value>, DubboError> {
        let count = self.argument_count()?;
        let mut d = Decoder::starting_at(self.body, self.args_offset);
        let mut args = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            args.push(d.read_value().map_err(DubboError::body("arguments"))?);
        }
        Ok(args)
    }

    /// Skips the arguments and reads the attachments map. Arguments are walked, not built; class
    /// definitions in them are remembered because the attachments may use them.
    pub fn attachments(&self) -> Result<Attachments<'a>, DubboError> {
        let mut d = self.after_arguments()?;
        read_attachments(&mut d)
    }

    /// A decoder positioned after the last argument.
    pub(crate) fn after_arguments(&self) -> Result<Decoder<'a>, DubboError> {
        let count = self.argument_count()?;
        let mut d = Decoder::starting_at(self.body, self.args_offset);
        for _ in 0..count {
            d.skip_value().map_err(DubboError::body("arguments"))?;
        }
        Ok(d)
    }
}

/// Reads one of the leading strings.
fn leading_str<'a>(
    d: &mut Decoder<'a>,
    part: &'static str,
) -> Result<Option<Cow<'a, str>>, DubboError> {
    d.read_str().map_err(DubboError::body(part))
}

/// `true` if `byte` starts a string (any form).
pub(crate) fn is_string_tag(byte: u8) -> bool {
    matches!(byte, 0x00..=0x1F | 0x30..=0x33 | b'R' | b'S')
}

/// Reads an attachments map (the last value of a body); an empty result when the body ends
/// before it.
pub(crate) fn read_attachments<'a>(d: &mut Decoder<'a>) -> Result<Attachments<'a>, DubboError> {
    let start = d.position();
    match d.peek() {
        None => return Ok(Attachments::default()),
        Some(b'H' | b'M') => {}
        Some(b'N') => {
            d.read_value().map_err(DubboError::body("attachments"))?;
            return Ok(Attachments::default());
        }
        Some(_) => {
            return Err(DubboError::UnexpectedValue {
                part: "attachments",
                offset: start,
                found: "not a map",
            });
        }
    }
    let err = DubboError::body;
    d.read_map_start().map_err(err("attachments"))?;
    // Java consumers send about five; one allocation covers the usual case.
    let mut entries = Vec::with_capacity(8);
    while !d.try_read_end().map_err(err("attachments"))? {
        let key_at = d.position();
        let key =
            d.read_str()
                .map_err(err("attachment key"))?
                .ok_or(DubboError::UnexpectedValue {
                    part: "attachment key",
                    offset: key_at,
                    found: "null",
                })?;
        let value = if d.peek().is_some_and(is_string_tag) {
            d.read_str()
                .map_err(err("attachment value"))?
                .map_or(AttachmentValue::Null, AttachmentValue::Str)
        } else {
            match d.read_value().map_err(err("attachment value"))? {
                Value::Null => AttachmentValue::Null,
                other => AttachmentValue::Other(other),
            }
        };
        entries.push((key, value));
    }
    Ok(Attachments {
        entries,
        span: Some(start..d.position()),
    })
}

// === impl Attachments ===

impl<'a> Attachments<'a> {
    /// The value for `key`; with duplicate keys the last one wins, as in the Java `HashMap` the
    /// receiver builds.
    pub fn get(&self, key: &str) -> Option<&AttachmentValue<'a>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The value for `key` if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(AttachmentValue::as_str)
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttachmentValue<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where the map sits in the body (from `H`/`M` to just after `Z`); `None` when the body has
    /// no map.
    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }
}

// === impl AttachmentValue ===

impl AttachmentValue<'_> {
    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttachmentValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Counts the types in a JVM parameter descriptor (`ReflectUtils.getDesc` grammar): each type is
/// any number of `[`, then a primitive letter or `L<class name>;`. `Ljava/lang/String;[I` is 2.
pub fn argument_count(descriptor: &str) -> Result<usize, DubboError> {
    let bytes = descriptor.as_bytes();
    let invalid = |position: usize| DubboError::InvalidDescriptor {
        descriptor: descriptor.to_owned(),
        position,
    };
    let mut i = 0;
    let mut count = 0;
    while i < bytes.len() {
        while bytes.get(i) == Some(&b'[') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'Z' | b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'V') => i += 1,
            Some(b'L') => {
                let rest = bytes.get(i + 1..).unwrap_or_default();
                match rest.iter().position(|&b| b == b';') {
                    // An empty class name (`L;`) is not a type.
                    Some(0) | None => return Err(invalid(i)),
                    Some(end) => i += end + 2,
                }
            }
            _ => return Err(invalid(i)),
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_counts() {
        for (desc, n) in [
            ("", 0),
            ("Ljava/lang/String;", 1),
            ("Ljava/lang/String;[I", 2),
            ("Ljava/lang/String;I[B", 3),
            ("[Ljava/lang/String;", 1),
            ("I[ZLjava/lang/Object;", 3),
            ("[[J", 1),
            ("Lcom/foo/Outer$Inner;D", 2),
            (GENERIC_DESCRIPTOR, 3),
        ] {
            assert_eq!(argument_count(desc).unwrap(), n, "{desc}");
        }
        for bad in ["L", "Ljava", "[", "X", "L;", "I["] {
            assert!(argument_count(bad).is_err(), "{bad}");
        }
    }
}
