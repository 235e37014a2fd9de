//! Walking (skipping) a Thrift struct without materialising it, to delimit unframed messages.
//!
//! An unframed ("buffered") message has no length prefix, so the only way to find where it ends is
//! to walk its argument struct value by value. The walk is iterative with an explicit stack, so the
//! nesting limit bounds memory and no input can overflow the call stack. Strings and lists of
//! fixed-width elements are skipped in one step, so a large blob costs O(1), not O(bytes).

use super::header::{MessageHeader, read_header};
use super::wire::{self, Cursor, Parse, Stop};
use super::{Protocol, ThriftError};

/// Size and nesting limits for walking a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The largest message, in bytes, before the walk gives up with
    /// [`ThriftError::MessageTooLarge`] instead of asking for more bytes.
    pub(crate) max_len: usize,
    /// The deepest nesting of structs, lists, sets and maps (the message's own struct is depth 1).
    pub(crate) max_depth: usize,
}

/// Walks the struct at the start of `buf` and returns its length in bytes.
///
/// `Ok(None)` means `buf` is a valid prefix and more bytes are needed. A struct that would end
/// past `max_len` bytes, or nest deeper than `max_depth`, is an error.
pub fn skip_struct(
    buf: &[u8],
    protocol: Protocol,
    max_len: usize,
    max_depth: usize,
) -> Result<Option<usize>, ThriftError> {
    let mut cur = Cursor::stream(buf, max_len);
    wire::finish(walk_struct(&mut cur, protocol, max_depth).map(|()| cur.pos()))
}

/// Returns the length of the unframed message (header and struct) at the start of `buf`.
///
/// `Ok(None)` means more bytes are needed; limits as for [`skip_struct`].
pub fn message_len(
    buf: &[u8],
    max_len: usize,
    max_depth: usize,
) -> Result<Option<usize>, ThriftError> {
    let limits = Limits { max_len, max_depth };
    wire::finish(walk_message(buf, limits).map(|(_, len)| len))
}

/// The header and length of the unframed message at the start of `buf`, or why they are not
/// known yet.
pub(crate) fn walk_message(buf: &[u8], limits: Limits) -> Parse<(MessageHeader, usize)> {
    let mut cur = Cursor::stream(buf, limits.max_len);
    let header = read_header(&mut cur)?;
    walk_struct(&mut cur, header.protocol, limits.max_depth)?;
    Ok((header, cur.pos()))
}

/// One open container on the walk stack.
enum Frame {
    /// Inside a struct: read field headers until STOP.
    Struct,
    /// Inside a list or set: `remaining` elements of type `elem` to go.
    List { elem: u8, remaining: usize },
    /// Inside a map: `remaining` pairs to go; `key_next` says which half comes next.
    Map {
        key: u8,
        value: u8,
        remaining: usize,
        key_next: bool,
    },
}

/// What a struct field header announced.
enum Field {
    /// STOP: the struct ends.
    Stop,
    /// A compact boolean field: the value was in the header, there is no payload.
    Inline,
    /// A value of this type (protocol-specific id) follows.
    Value(u8),
}

/// Walks the struct at the cursor and leaves the cursor after its STOP byte.
pub(crate) fn walk_struct(cur: &mut Cursor<'_>, protocol: Protocol, max_depth: usize) -> Parse<()> {
    if max_depth == 0 {
        return Err(Stop::Invalid(ThriftError::TooDeep {
            offset: cur.offset(),
            max_depth,
        }));
    }
    run(cur, protocol, max_depth, Frame::Struct)
}

/// Skips one value of protocol-specific type id `ty` (element context: compact booleans are one
/// byte) whose type was read at `type_offset`.
pub(crate) fn skip_value(
    cur: &mut Cursor<'_>,
    protocol: Protocol,
    ty: u8,
    type_offset: usize,
    max_depth: usize,
) -> Parse<()> {
    let opened = match protocol {
        Protocol::Binary => binary_value(cur, ty, type_offset)?,
        Protocol::Compact => compact_value(cur, ty, type_offset)?,
    };
    match opened {
        Some(_) if max_depth == 0 => Err(Stop::Invalid(ThriftError::TooDeep {
            offset: type_offset,
            max_depth,
        })),
        Some(frame) => run(cur, protocol, max_depth, frame),
        None => Ok(()),
    }
}

/// Runs the walk until the container `first` (already opened) is closed.
fn run(cur: &mut Cursor<'_>, protocol: Protocol, max_depth: usize, first: Frame) -> Parse<()> {
    let mut stack = vec![first];
    while let Some(top) = stack.last_mut() {
        let value_offset = cur.offset();
        let ty = match top {
            Frame::Struct => match field_header(cur, protocol)? {
                Field::Stop => {
                    stack.pop();
                    continue;
                }
                Field::Inline => continue,
                Field::Value(ty) => ty,
            },
            Frame::List { elem, remaining } => {
                if *remaining == 0 {
                    stack.pop();
                    continue;
                }
                *remaining -= 1;
                *elem
            }
            Frame::Map {
                key,
                value,
                remaining,
                key_next,
            } => {
                if *key_next {
                    if *remaining == 0 {
                        stack.pop();
                        continue;
                    }
                    *key_next = false;
                    *key
                } else {
                    *key_next = true;
                    *remaining -= 1;
                    *value
                }
            }
        };
        let opened = match protocol {
            Protocol::Binary => binary_value(cur, ty, value_offset)?,
            Protocol::Compact => compact_value(cur, ty, value_offset)?,
        };
        if let Some(frame) = opened {
            if stack.len() >= max_depth {
                return Err(Stop::Invalid(ThriftError::TooDeep {
                    offset: value_offset,
                    max_depth,
                }));
            }
            stack.push(frame);
        }
    }
    Ok(())
}

fn field_header(cur: &mut Cursor<'_>, protocol: Protocol) -> Parse<Field> {
    let byte = cur.u8()?;
    if byte == 0 {
        return Ok(Field::Stop);
    }
    match protocol {
        Protocol::Binary => {
            cur.skip(2)?; // i16 field id
            Ok(Field::Value(byte))
        }
        Protocol::Compact => {
            if byte >> 4 == 0 {
                // No id delta: the field id follows as a zigzag varint i16.
                cur.varint(3)?;
            }
            match byte & 0x0f {
                COMPACT_TRUE | COMPACT_FALSE => Ok(Field::Inline),
                ty => Ok(Field::Value(ty)),
            }
        }
    }
}

// Binary protocol type ids (PROTOCOLS.md §3.1).
const BINARY_BOOL: u8 = 2;
const BINARY_BYTE: u8 = 3;
const BINARY_DOUBLE: u8 = 4;
const BINARY_I16: u8 = 6;
const BINARY_I32: u8 = 8;
const BINARY_I64: u8 = 10;
const BINARY_STRING: u8 = 11;
const BINARY_STRUCT: u8 = 12;
const BINARY_MAP: u8 = 13;
const BINARY_SET: u8 = 14;
const BINARY_LIST: u8 = 15;
const BINARY_UUID: u8 = 16;

fn binary_fixed_width(ty: u8) -> Option<usize> {
    match ty {
        BINARY_BOOL | BINARY_BYTE => Some(1),
        BINARY_I16 => Some(2),
        BINARY_I32 => Some(4),
        BINARY_DOUBLE | BINARY_I64 => Some(8),
        BINARY_UUID => Some(16),
        _ => None,
    }
}

fn binary_valid(ty: u8) -> bool {
    binary_fixed_width(ty).is_some()
        || matches!(
            ty,
            BINARY_STRING | BINARY_STRUCT | BINARY_MAP | BINARY_SET | BINARY_LIST
        )
}

/// Skips one binary value of type `ty`, or returns the container it opens.
fn binary_value(cur: &mut Cursor<'_>, ty: u8, offset: usize) -> Parse<Option<Frame>> {
    if let Some(width) = binary_fixed_width(ty) {
        cur.skip(width)?;
        return Ok(None);
    }
    match ty {
        BINARY_STRING => {
            let len = cur.i32_len()?;
            cur.skip(len)?;
            Ok(None)
        }
        BINARY_STRUCT => Ok(Some(Frame::Struct)),
        BINARY_MAP => {
            let key = cur.u8()?;
            let value = cur.u8()?;
            let size = cur.i32_len()?;
            if size == 0 {
                // Writers put arbitrary types on empty maps; nothing is read with them.
                return Ok(None);
            }
            check_type(binary_valid(key), key, offset)?;
            check_type(binary_valid(value), value, offset)?;
            if let (Some(k), Some(v)) = (binary_fixed_width(key), binary_fixed_width(value)) {
                cur.skip(size.saturating_mul(k.saturating_add(v)))?;
                return Ok(None);
            }
            Ok(Some(Frame::Map {
                key,
                value,
                remaining: size,
                key_next: true,
            }))
        }
        BINARY_SET | BINARY_LIST => {
            let elem = cur.u8()?;
            let size = cur.i32_len()?;
            if size == 0 {
                return Ok(None);
            }
            check_type(binary_valid(elem), elem, offset)?;
            list_frame(cur, elem, size, binary_fixed_width(elem))
        }
        _ => Err(Stop::Invalid(ThriftError::InvalidFieldType {
            offset,
            value: ty,
        })),
    }
}

// Compact protocol type ids (PROTOCOLS.md §3.1).
const COMPACT_TRUE: u8 = 1;
const COMPACT_FALSE: u8 = 2;
const COMPACT_BYTE: u8 = 3;
const COMPACT_I16: u8 = 4;
const COMPACT_I32: u8 = 5;
const COMPACT_I64: u8 = 6;
const COMPACT_DOUBLE: u8 = 7;
const COMPACT_BINARY: u8 = 8;
const COMPACT_LIST: u8 = 9;
const COMPACT_SET: u8 = 10;
const COMPACT_MAP: u8 = 11;
const COMPACT_STRUCT: u8 = 12;
const COMPACT_UUID: u8 = 13;

/// Width of a compact *element* (inside a list, set or map); booleans are one byte there.
fn compact_fixed_width(ty: u8) -> Option<usize> {
    match ty {
        COMPACT_TRUE | COMPACT_FALSE | COMPACT_BYTE => Some(1),
        COMPACT_DOUBLE => Some(8),
        COMPACT_UUID => Some(16),
        _ => None,
    }
}

fn compact_valid(ty: u8) -> bool {
    (COMPACT_TRUE..=COMPACT_UUID).contains(&ty)
}

/// Skips one compact value of type `ty` (element context), or returns the container it opens.
fn compact_value(cur: &mut Cursor<'_>, ty: u8, offset: usize) -> Parse<Option<Frame>> {
    if let Some(width) = compact_fixed_width(ty) {
        cur.skip(width)?;
        return Ok(None);
    }
    match ty {
        COMPACT_I16 | COMPACT_I32 => {
            cur.varint(5)?;
            Ok(None)
        }
        COMPACT_I64 => {
            cur.varint(10)?;
            Ok(None)
        }
        COMPACT_BINARY => {
            let len = cur.varint_len()?;
            cur.skip(len)?;
            Ok(None)
        }
        COMPACT_LIST | COMPACT_SET => {
            let header = cur.u8()?;
            let elem = header & 0x0f;
            let mut size = usize::from(header >> 4);
            if size == 15 {
                size = cur.varint_len()?;
            }
            if size == 0 {
                return Ok(None);
            }
            check_type(compact_valid(elem), elem, offset)?;
            list_frame(cur, elem, size, compact_fixed_width(elem))
        }
        COMPACT_MAP => {
            let size = cur.varint_len()?;
            if size == 0 {
                // An empty map is the single byte 0x00: no key/value type byte follows.
                return Ok(None);
            }
            let types = cur.u8()?;
            let (key, value) = (types >> 4, types & 0x0f);
            check_type(compact_valid(key), key, offset)?;
            check_type(compact_valid(value), value, offset)?;
            if let (Some(k), Some(v)) = (compact_fixed_width(key), compact_fixed_width(value)) {
                cur.skip(size.saturating_mul(k.saturating_add(v)))?;
                return Ok(None);
            }
            Ok(Some(Frame::Map {
                key,
                value,
                remaining: size,
                key_next: true,
            }))
        }
        COMPACT_STRUCT => Ok(Some(Frame::Struct)),
        _ => Err(Stop::Invalid(ThriftError::InvalidFieldType {
            offset,
            value: ty,
        })),
    }
}

fn list_frame(
    cur: &mut Cursor<'_>,
    elem: u8,
    size: usize,
    fixed_width: Option<usize>,
) -> Parse<Option<Frame>> {
    match fixed_width {
        Some(width) => {
            cur.skip(size.saturating_mul(width))?;
            Ok(None)
        }
        None => Ok(Some(Frame::List {
            elem,
            remaining: size,
        })),
    }
}

fn check_type(valid: bool, value: u8, offset: usize) -> Parse<()> {
    if valid {
        Ok(())
    } else {
        Err(Stop::Invalid(ThriftError::InvalidFieldType {
            offset,
            value,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn binary_nested_containers() {
        // {1: list<map<string, struct{1: bool}>> [{"a": {1: true}}], 2: set<i32> [7, 8]}
        let bytes: Vec<u8> = [
            &[0x0f, 0x00, 0x01, 0x0d, 0x00, 0x00, 0x00, 0x01][..],
            &[0x0b, 0x0c, 0x00, 0x00, 0x00, 0x01],
            &[0x00, 0x00, 0x00, 0x01, b'a'],
            &[0x02, 0x00, 0x01, 0x01, 0x00],
            &[0x0e, 0x00, 0x02, 0x08, 0x00, 0x00, 0x00, 0x02],
            &[0, 0, 0, 7, 0, 0, 0, 8],
            &[0x00],
        ]
        .concat();
        assert_eq!(
            skip_struct(&bytes, Protocol::Binary, MAX, 64).unwrap(),
            Some(bytes.len())
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                skip_struct(&bytes[..cut], Protocol::Binary, MAX, 64).unwrap(),
                None,
                "prefix {cut}"
            );
        }
        assert!(matches!(
            skip_struct(&bytes, Protocol::Binary, MAX, 3),
            Err(ThriftError::TooDeep { max_depth: 3, .. })
        ));
        assert_eq!(
            skip_struct(&bytes, Protocol::Binary, MAX, 4).unwrap(),
            Some(bytes.len())
        );
    }

    #[test]
    fn compact_all_types() {
        let bytes: Vec<u8> = [
            &[0x11][..],
            &[0x13, 0x7f],
            &[0x14, 0x03],
            &[0x15, 0xac, 0x02],
            &[0x16, 0x80, 0x80, 0x01],
            &[0x17, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
            &[0x18, 0x02, b'h', b'i'],
            &[0x19, 0x25, 0x01, 0x02],
            &[0x1a, 0x11, 0x01],                   // set<bool> {true}
            &[0x1b, 0x01, 0x85, 0x01, b'k', 0x02], // map<string,i32> {"k": 1}
            &[0x1b, 0x00],                         // empty map
            &[0x1c, 0x11, 0x00],                   // struct {1: true}
            &[0x1d],
            &[0u8; 16],                // uuid
            &[0x03, 0xa0, 0x1f, 0x01], // field id 2000 (long form), byte
            &[0x00],
        ]
        .concat();
        assert_eq!(
            skip_struct(&bytes, Protocol::Compact, MAX, 64).unwrap(),
            Some(bytes.len())
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                skip_struct(&bytes[..cut], Protocol::Compact, MAX, 64).unwrap(),
                None,
                "prefix {cut}"
            );
        }
    }

    #[test]
    fn invalid_types_and_sizes() {
        assert!(matches!(
            skip_struct(&[0x05, 0x00, 0x01], Protocol::Binary, MAX, 64),
            Err(ThriftError::InvalidFieldType {
                offset: 0,
                value: 5
            })
        ));
        assert!(matches!(
            skip_struct(
                &[0x0b, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff],
                Protocol::Binary,
                MAX,
                64
            ),
            Err(ThriftError::NegativeLength {
                offset: 3,
                value: -1
            })
        ));
        assert!(matches!(
            skip_struct(
                &[0x0b, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff],
                Protocol::Binary,
                MAX,
                64
            ),
            Err(ThriftError::MessageTooLarge { .. })
        ));
        assert!(matches!(
            skip_struct(&[0x1e], Protocol::Compact, MAX, 64),
            Err(ThriftError::InvalidFieldType { value: 14, .. })
        ));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut bytes = vec![];
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[0x0c, 0x00, 0x01]);
        }
        assert!(matches!(
            skip_struct(&bytes, Protocol::Binary, MAX, 64),
            Err(ThriftError::TooDeep { max_depth: 64, .. })
        ));
    }
}
