//! Errors of the Hessian decoder and encoder.
//!
//! Every decode error carries the byte offset (relative to the start of the slice handed to the
//! decoder) where the problem was found, so a proxy can log where a body went wrong.

/// Why a Hessian input could not be decoded (or skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("hessian: input ends at byte {offset} in the middle of {context}")]
    UnexpectedEof {
        /// Offset of the end of the input.
        offset: usize,
        /// What was being read.
        context: &'static str,
    },
    /// A byte that is not valid at this position.
    #[error("hessian: unexpected byte 0x{byte:02x} at byte {offset}, expected {expected}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        byte: u8,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// String data that is not UTF-8 (nor CESU-8 surrogates).
    #[error("hessian: invalid UTF-8 in string data at byte {offset}")]
    InvalidUtf8 {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// A negative or otherwise impossible length, count or index.
    #[error("hessian: invalid {what} {value} at byte {offset}")]
    InvalidLength {
        /// Offset of the int holding it.
        offset: usize,
        /// What the number is (list length, field count, ...).
        what: &'static str,
        /// The number as read.
        value: i64,
    },
    /// A number that does not fit the requested Rust type.
    #[error("hessian: number {value} at byte {offset} does not fit in {target}")]
    OutOfRange {
        /// Offset of the number.
        offset: usize,
        /// The value as read.
        value: i64,
        /// The requested type.
        target: &'static str,
    },
    /// An object instance naming a class definition that does not exist (yet).
    #[error("hessian: class definition #{index} used at byte {offset} but only {defined} defined")]
    UnknownClass {
        /// Offset of the instance.
        offset: usize,
        /// The definition index read.
        index: u64,
        /// How many definitions the stream had at that point.
        defined: usize,
    },
    /// A type reference (int in a type position) past the end of the type table.
    #[error("hessian: type reference #{index} at byte {offset} but only {defined} types defined")]
    UnknownType {
        /// Offset of the reference.
        offset: usize,
        /// The index read.
        index: u64,
        /// Size of the type table at that point.
        defined: usize,
    },
    /// A value reference (`Q n`) to a list, map or object that has not started yet.
    #[error("hessian: value reference #{index} at byte {offset} but only {defined} values defined")]
    UnknownRef {
        /// Offset of the `Q`.
        offset: usize,
        /// The index read.
        index: u64,
        /// How many lists, maps and objects the stream had started at that point.
        defined: usize,
    },
    /// Lists, maps and objects nested deeper than [`Limits::max_depth`](super::Limits).
    #[error("hessian: nesting deeper than {limit} levels at byte {offset}")]
    DepthLimit {
        /// Offset of the value that went too deep.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The decoded value would need more memory than [`Limits::max_alloc`](super::Limits).
    #[error(
        "hessian: decoding needs more than the {limit}-byte allocation limit (at byte {offset})"
    )]
    AllocLimit {
        /// Offset where the limit was crossed.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Bytes left over after a value that should have ended the input.
    #[error("hessian: {remaining} unexpected trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many bytes are left.
        remaining: usize,
    },
}

impl DecodeError {
    /// The byte offset where the error was detected.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::UnexpectedEof { offset, .. }
            | DecodeError::UnexpectedByte { offset, .. }
            | DecodeError::InvalidUtf8 { offset }
            | DecodeError::InvalidLength { offset, .. }
            | DecodeError::OutOfRange { offset, .. }
            | DecodeError::UnknownClass { offset, .. }
            | DecodeError::UnknownType { offset, .. }
            | DecodeError::UnknownRef { offset, .. }
            | DecodeError::DepthLimit { offset, .. }
            | DecodeError::AllocLimit { offset, .. }
            | DecodeError::TrailingBytes { offset, .. } => *offset,
        }
    }
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An object whose field values do not match its class definition.
    #[error("hessian: object of class {class} has {actual} field values for {expected} fields")]
    FieldCountMismatch {
        /// The class name.
        class: String,
        /// Fields in the definition.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
    /// A [`Value::Ref`](super::Value::Ref) to a value that has not been written in this stream.
    #[error("hessian: reference #{index} but only {defined} lists, maps and objects written")]
    UnknownRef {
        /// The reference index.
        index: u32,
        /// Lists, maps and objects written so far.
        defined: u32,
    },
    /// Values nested deeper than the encoder's depth limit.
    #[error("hessian: value nested deeper than {limit} levels")]
    DepthLimit {
        /// The limit.
        limit: usize,
    },
    /// A length that Hessian cannot express (more than `i32::MAX` elements).
    #[error("hessian: {what} of length {length} is too long to encode")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        length: usize,
    },
}
