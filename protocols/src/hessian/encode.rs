//! The Hessian encoder, byte-compatible with hessian-lite's `Hessian2Output`.
//!
//! Byte compatibility means the same choices Java makes (PROTOCOLS.md §2.6/§2.8): the shortest
//! int/long forms, doubles as `5B`/`5C`/byte/short/int32-thousandths before the 8-byte form,
//! minute dates, strings measured in UTF-16 units with surrogates as 3-byte sequences and chunked
//! at 32768 units (never ending a chunk on a high surrogate), a class definition on a class's first
//! use and compact instance tags afterwards, type names written once and referenced by index
//! afterwards, and `Q` references for [`Value::Ref`].
//!
//! One quirk needs more than that: hessian-lite splits a binary into chunks where its 8 KiB output
//! buffer fills up, so the chunk sizes depend on everything written before in the same stream. The
//! encoder keeps a model of that buffer's fill level (`java_offset`), updated with the same
//! flush checks `Hessian2Output` performs before each write, and chunks binaries the same way.
//!
//! One [`Encoder`] is one Hessian stream (one Dubbo body): its class, type and reference tables
//! persist until [`Encoder::reset`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::string::{encode_cesu, unit_len, utf16_len};
use super::value::{ClassDef, List, Map, Object, Value};

/// hessian-lite's output buffer size (`Hessian2Output.SIZE`).
const JAVA_BUFFER: usize = 8 * 1024;

/// Longest string chunk hessian-lite writes, in UTF-16 units.
const STRING_CHUNK: usize = 0x8000;

/// An encoder writing one Hessian stream into a growable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    out: BytesMut,
    /// Where this stream's bytes start in `out` (the buffer may hold a prefix, e.g. a header).
    start: usize,
    classes: Vec<Arc<ClassDef>>,
    types: HashMap<String, u32>,
    refs: u32,
    /// Model of `Hessian2Output._offset` (see the module docs).
    java_offset: usize,
    depth: usize,
    max_depth: usize,
}

/// Encodes one value into a fresh stream.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder::new();
    encoder.write_value(value)?;
    Ok(encoder.finish().to_vec())
}

// === impl Encoder ===

impl Encoder {
    /// An encoder with an empty buffer.
    pub fn new() -> Self {
        Self::with_buffer(BytesMut::new())
    }

    /// An encoder appending to `out`; bytes already in `out` are kept and are not part of the
    /// Hessian stream (this is how a Dubbo header is written in front of a body).
    pub fn with_buffer(out: BytesMut) -> Self {
        Self {
            start: out.len(),
            out,
            classes: Vec::new(),
            types: HashMap::new(),
            refs: 0,
            java_offset: 0,
            depth: 0,
            max_depth: super::Limits::default().max_depth,
        }
    }

    /// Sets the deepest nesting of lists, maps and objects [`write_value`](Self::write_value)
    /// accepts (default 128, as the decoder's default).
    pub fn set_max_depth(&mut self, max_depth: usize) {
        self.max_depth = max_depth;
    }

    /// Starts a new stream: forgets class definitions, type names and references (the buffer is
    /// kept).
    pub fn reset(&mut self) {
        self.start = self.out.len();
        self.classes.clear();
        self.types.clear();
        self.refs = 0;
        self.java_offset = 0;
    }

    /// The whole buffer, including any prefix it was created with.
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    /// Bytes written to the current stream.
    pub fn stream_len(&self) -> usize {
        self.out.len().saturating_sub(self.start)
    }

    /// Returns the buffer.
    pub fn finish(self) -> BytesMut {
        self.out
    }

    // --- model of hessian-lite's buffer ------------------------------------------------------

    /// `if (SIZE <= _offset + n) flushBuffer();`
    fn flush_if_at_least(&mut self, n: usize) {
        if JAVA_BUFFER <= self.java_offset + n {
            self.java_offset = 0;
        }
    }

    /// `if (SIZE < _offset + n) flushBuffer();`
    fn flush_if_over(&mut self, n: usize) {
        if JAVA_BUFFER < self.java_offset + n {
            self.java_offset = 0;
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out.put_slice(bytes);
        self.java_offset += bytes.len();
    }

    fn put_u8(&mut self, b: u8) {
        self.out.put_u8(b);
        self.java_offset += 1;
    }

    // --- scalars -----------------------------------------------------------------------------

    /// Writes `N`.
    pub fn write_null(&mut self) {
        self.flush_if_at_least(16);
        self.put_u8(b'N');
    }

    /// Writes `T` or `F`.
    pub fn write_bool(&mut self, value: bool) {
        self.flush_if_over(16);
        self.put_u8(if value { b'T' } else { b'F' });
    }

    /// Writes an int in its shortest form.
    pub fn write_int(&mut self, value: i32) {
        self.flush_if_at_least(16);
        // The truncating casts below keep exactly the bytes each form stores.
        match value {
            -16..=47 => self.put_u8((0x90 + value) as u8),
            -2048..=2047 => self.put(&[(0xC8 + (value >> 8)) as u8, value as u8]),
            -262_144..=262_143 => self.put(&[
                (0xD4 + (value >> 16)) as u8,
                (value >> 8) as u8,
                value as u8,
            ]),
            _ => {
                self.put_u8(b'I');
                self.put(&value.to_be_bytes());
            }
        }
    }

    /// Writes a long in its shortest form.
    pub fn write_long(&mut self, value: i64) {
        self.flush_if_at_least(16);
        match value {
            -8..=15 => self.put_u8((0xE0 + value) as u8),
            -2048..=2047 => self.put(&[(0xF8 + (value >> 8)) as u8, value as u8]),
            -262_144..=262_143 => self.put(&[
                (0x3C + (value >> 16)) as u8,
                (value >> 8) as u8,
                value as u8,
            ]),
            _ => match i32::try_from(value) {
                Ok(v) => {
                    self.put_u8(b'Y');
                    self.put(&v.to_be_bytes());
                }
                Err(_) => {
                    self.put_u8(b'L');
                    self.put(&value.to_be_bytes());
                }
            },
        }
    }

    /// Writes a double the way `Hessian2Output.writeDouble` does.
    ///
    /// As in Java, `-0.0` is written as `5B` (and so reads back as `0.0`), and every NaN as the
    /// canonical NaN (`Double.doubleToLongBits`).
    pub fn write_double(&mut self, value: f64) {
        self.flush_if_at_least(16);
        // Java's `(int) value` saturates and maps NaN to 0, exactly like Rust's `as`.
        let int_value = value as i32;
        if f64::from(int_value) == value {
            match int_value {
                0 => return self.put_u8(0x5B),
                1 => return self.put_u8(0x5C),
                -0x80..0x80 => return self.put(&[0x5D, int_value as u8]),
                -0x8000..0x8000 => {
                    let [hi, lo] = (int_value as i16).to_be_bytes();
                    return self.put(&[0x5E, hi, lo]);
                }
                _ => {}
            }
        }
        let mills = (value * 1000.0) as i32;
        if 0.001 * f64::from(mills) == value {
            self.put_u8(0x5F);
            return self.put(&mills.to_be_bytes());
        }
        let bits = if value.is_nan() {
            f64::NAN.to_bits()
        } else {
            value.to_bits()
        };
        self.put_u8(b'D');
        self.put(&bits.to_be_bytes());
    }

    /// Writes a date (milliseconds since the epoch): `4B` + minutes when it is a whole number of
    /// minutes that fits in an int, else `4A` + milliseconds.
    pub fn write_date(&mut self, millis: i64) {
        self.flush_if_over(32);
        if millis % 60_000 == 0
            && let Ok(minutes) = i32::try_from(millis / 60_000)
        {
            self.put_u8(0x4B);
            return self.put(&minutes.to_be_bytes());
        }
        self.put_u8(0x4A);
        self.put(&millis.to_be_bytes());
    }

    /// Writes a string as hessian-lite does: lengths in UTF-16 units, chunks of 32768 units
    /// (32767 when the chunk would end between the halves of a surrogate pair), then a final
    /// chunk in the shortest form.
    pub fn write_str(&mut self, value: &str) {
        self.flush_if_at_least(16);
        let mut rest = value;
        let mut units = utf16_len(rest);
        while units > STRING_CHUNK {
            self.flush_if_at_least(16);
            let (chunk, chunk_units) = split_at_units(rest, STRING_CHUNK);
            // Lossless: a chunk is at most 0x8000 units.
            let [hi, lo] = (chunk_units as u16).to_be_bytes();
            self.put(&[b'R', hi, lo]);
            self.print_string(chunk);
            units -= chunk_units;
            rest = rest.get(chunk.len()..).unwrap_or_default();
        }
        self.flush_if_at_least(16);
        // Lossless: `units` is at most 0x8000 here.
        match units {
            0..=31 => self.put_u8(units as u8),
            32..=1023 => self.put(&[0x30 + (units >> 8) as u8, units as u8]),
            _ => self.put(&[b'S', (units >> 8) as u8, units as u8]),
        }
        self.print_string(rest);
    }

    /// Writes a string or `N`.
    pub fn write_opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(s) => self.write_str(s),
            None => self.write_null(),
        }
    }

    /// `Hessian2Output.printString`: the string data, with the buffer model's per-character
    /// flush check.
    fn print_string(&mut self, s: &str) {
        let start = self.out.len();
        encode_cesu(s, &mut self.out);
        let written = self.out.len() - start;
        // Java checks for 16 free bytes before every character; when even the last check cannot
        // trigger, the whole run simply advances the model.
        if self.java_offset + written + 16 < JAVA_BUFFER {
            self.java_offset += written;
            return;
        }
        let mut units = [0u16; 2];
        for c in s.chars() {
            for &unit in c.encode_utf16(&mut units).iter() {
                self.flush_if_at_least(16);
                self.java_offset += unit_len(unit);
            }
        }
    }

    /// Writes a byte array, chunked exactly where hessian-lite's buffer would split it.
    pub fn write_binary(&mut self, value: &[u8]) {
        let mut rest = value;
        // Signed, as in Java: after a binary that exactly filled the buffer the free space is
        // negative, and even an empty binary then goes through the chunk loop.
        let free = |offset: usize| JAVA_BUFFER as isize - offset as isize - 3;
        while free(self.java_offset) < rest.len() as isize {
            let mut sublen = free(self.java_offset);
            if sublen < 16 {
                self.java_offset = 0;
                sublen = free(0).min(rest.len() as isize);
            }
            let (chunk, tail) = rest.split_at(usize::try_from(sublen).unwrap_or(0).min(rest.len()));
            // Lossless: a chunk is smaller than the 8 KiB buffer.
            let [hi, lo] = (chunk.len() as u16).to_be_bytes();
            self.put(&[b'A', hi, lo]);
            self.put(chunk);
            rest = tail;
            // hessian-lite flushes after every chunk.
            self.java_offset = 0;
        }
        self.flush_if_over(16);
        let len = rest.len();
        match len {
            0..=15 => self.put_u8(0x20 + len as u8),
            16..=1023 => self.put(&[0x34 + (len >> 8) as u8, len as u8]),
            _ => self.put(&[b'B', (len >> 8) as u8, len as u8]),
        }
        self.put(rest);
    }

    // --- containers --------------------------------------------------------------------------

    /// Writes a type name, or its index when this stream already wrote it.
    fn write_type(&mut self, name: &str) {
        self.flush_if_over(32);
        if let Some(&index) = self.types.get(name) {
            // Type tables never get near i32::MAX entries; saturate rather than wrap.
            self.write_int(i32::try_from(index).unwrap_or(i32::MAX));
        } else {
            let index = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
            self.types.insert(name.to_owned(), index);
            self.write_str(name);
        }
    }

    /// Starts a list of `len` elements (`None` for a variable-length list, which must be closed
    /// with [`write_list_end`](Self::write_list_end)); `type_name` `None` writes an untyped list.
    ///
    /// The list takes the next reference index.
    pub fn write_list_begin(
        &mut self,
        len: Option<usize>,
        type_name: Option<&str>,
    ) -> Result<(), EncodeError> {
        self.flush_if_over(32);
        match (len, type_name) {
            (None, Some(t)) => {
                self.put_u8(b'U');
                self.write_type(t);
            }
            (None, None) => self.put_u8(b'W'),
            (Some(n @ 0..=7), Some(t)) => {
                self.put_u8(0x70 + n as u8);
                self.write_type(t);
            }
            (Some(n @ 0..=7), None) => self.put_u8(0x78 + n as u8),
            (Some(n), t) => {
                let n = i32::try_from(n).map_err(|_| EncodeError::TooLong {
                    what: "list",
                    length: n,
                })?;
                match t {
                    Some(t) => {
                        self.put_u8(b'V');
                        self.write_type(t);
                    }
                    None => self.put_u8(b'X'),
                }
                self.write_int(n);
            }
        }
        self.refs = self.refs.saturating_add(1);
        Ok(())
    }

    /// Ends a variable-length list.
    pub fn write_list_end(&mut self) {
        self.flush_if_over(32);
        self.put_u8(b'Z');
    }

    /// Starts a map: `H` when `type_name` is `None` (Java `HashMap`), else `M` and the type. Close
    /// it with [`write_map_end`](Self::write_map_end). The map takes the next reference index.
    pub fn write_map_begin(&mut self, type_name: Option<&str>) {
        self.flush_if_over(32);
        match type_name {
            Some(t) => {
                self.put_u8(b'M');
                self.write_type(t);
            }
            None => self.put_u8(b'H'),
        }
        self.refs = self.refs.saturating_add(1);
    }

    /// Ends a map.
    pub fn write_map_end(&mut self) {
        self.flush_if_over(32);
        self.put_u8(b'Z');
    }

    /// Starts an object of `class`: writes the class definition on the class's first use in the
    /// stream, then the instance tag. The caller writes one value per field next. The object
    /// takes the next reference index.
    pub fn write_object_begin(&mut self, class: &Arc<ClassDef>) {
        let index = match self
            .classes
            .iter()
            .position(|c| Arc::ptr_eq(c, class) || **c == **class)
        {
            Some(index) => index,
            None => {
                self.flush_if_over(32);
                self.put_u8(b'C');
                self.write_str(&class.name);
                self.write_int(i32::try_from(class.fields.len()).unwrap_or(i32::MAX));
                for field in &class.fields {
                    self.write_str(field);
                }
                self.classes.push(Arc::clone(class));
                self.classes.len() - 1
            }
        };
        self.flush_if_over(32);
        match u8::try_from(index) {
            Ok(i @ 0..=15) => self.put_u8(0x60 + i),
            _ => {
                self.put_u8(b'O');
                self.write_int(i32::try_from(index).unwrap_or(i32::MAX));
            }
        }
        self.refs = self.refs.saturating_add(1);
    }

    /// Writes a reference (`Q n`) to the n-th list, map or object of this stream.
    pub fn write_ref(&mut self, index: u32) -> Result<(), EncodeError> {
        if index >= self.refs {
            return Err(EncodeError::UnknownRef {
                index,
                defined: self.refs,
            });
        }
        self.flush_if_over(16);
        self.put_u8(b'Q');
        self.write_int(i32::try_from(index).unwrap_or(i32::MAX));
        Ok(())
    }

    // --- values ------------------------------------------------------------------------------

    /// Writes a value and everything in it.
    pub fn write_value(&mut self, value: &Value) -> Result<(), EncodeError> {
        match value {
            Value::Null => self.write_null(),
            Value::Bool(b) => self.write_bool(*b),
            Value::Int(v) => self.write_int(*v),
            Value::Long(v) => self.write_long(*v),
            Value::Double(v) => self.write_double(*v),
            Value::Date(v) => self.write_date(*v),
            Value::String(s) => self.write_str(s),
            Value::Binary(b) => self.write_binary(b),
            Value::List(list) => self.nested(|e| e.write_list(list))?,
            Value::Map(map) => self.nested(|e| e.write_map(map))?,
            Value::Object(object) => self.nested(|e| e.write_object(object))?,
            Value::Ref(index) => self.write_ref(*index)?,
        }
        Ok(())
    }

    fn nested(
        &mut self,
        write: impl FnOnce(&mut Self) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        if self.depth >= self.max_depth {
            return Err(EncodeError::DepthLimit {
                limit: self.max_depth,
            });
        }
        self.depth += 1;
        let result = write(self);
        self.depth -= 1;
        result
    }

    fn write_list(&mut self, list: &List) -> Result<(), EncodeError> {
        let len = (!list.variable_length).then_some(list.items.len());
        self.write_list_begin(len, list.type_name.as_deref())?;
        for item in &list.items {
            self.write_value(item)?;
        }
        if list.variable_length {
            self.write_list_end();
        }
        Ok(())
    }

    fn write_map(&mut self, map: &Map) -> Result<(), EncodeError> {
        self.write_map_begin(map.type_name.as_deref());
        for (key, value) in &map.entries {
            self.write_value(key)?;
            self.write_value(value)?;
        }
        self.write_map_end();
        Ok(())
    }

    fn write_object(&mut self, object: &Object) -> Result<(), EncodeError> {
        if object.fields.len() != object.class.fields.len() {
            return Err(EncodeError::FieldCountMismatch {
                class: object.class.name.clone(),
                expected: object.class.fields.len(),
                actual: object.fields.len(),
            });
        }
        self.write_object_begin(&object.class);
        for field in &object.fields {
            self.write_value(field)?;
        }
        Ok(())
    }
}

/// The longest prefix of `s` with at most `max_units` UTF-16 units, and its length in units.
fn split_at_units(s: &str, max_units: usize) -> (&str, usize) {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        let n = c.len_utf16();
        if units + n > max_units {
            return (s.get(..i).unwrap_or_default(), units);
        }
        units += n;
    }
    (s, units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut e = Encoder::new();
        f(&mut e);
        e.finish().to_vec()
    }

    #[test]
    fn binary_chunks_follow_the_java_buffer() {
        // PROTOCOLS.md §2.4: 20 000 bytes from an empty buffer ⇒ A(8189) A(8189) B(3622).
        let out = bytes(|e| e.write_binary(&[7u8; 20_000]));
        assert_eq!(&out[..3], &[b'A', 0x1F, 0xFD]);
        assert_eq!(&out[3 + 8189..3 + 8189 + 3], &[b'A', 0x1F, 0xFD]);
        assert_eq!(
            &out[2 * (3 + 8189)..2 * (3 + 8189) + 3],
            &[b'B', 0x0E, 0x26]
        );
        assert_eq!(out.len(), 20_000 + 9);
        assert_eq!(bytes(|e| e.write_binary(&[0; 1024]))[..3], [b'B', 4, 0]);
        assert_eq!(bytes(|e| e.write_binary(&[0; 1023]))[..2], [0x37, 0xFF]);
    }

    #[test]
    fn string_chunk_never_splits_a_surrogate_pair() {
        let s = format!("{}😀{}", "a".repeat(32767), "b".repeat(10));
        let out = bytes(|e| e.write_str(&s));
        // First chunk stops before the emoji: 32767 units.
        assert_eq!(&out[..3], &[b'R', 0x7F, 0xFF]);
        assert_eq!(&out[3 + 32767..3 + 32767 + 1], &[0x0C]);
    }

    #[test]
    fn doubles_follow_hessian_lite() {
        assert_eq!(bytes(|e| e.write_double(-0.0)), [0x5B]);
        assert_eq!(bytes(|e| e.write_double(12.25)), [0x5F, 0, 0, 0x2F, 0xDA]);
        assert_eq!(bytes(|e| e.write_double(f64::NAN))[0], b'D');
    }
}
