//! The Hessian decoder: builds [`Value`]s, skips values without building them, and reads
//! strings without copying.
//!
//! One [`Decoder`] is one Hessian stream (one Dubbo body): class definitions, type names and
//! value references are shared by all values read from it, in whatever mix of reading and
//! skipping. Skipping stores only where each definition and type name sits, and builds them later
//! if a fully decoded value needs them, so the proxy's skip of the arguments allocates (almost)
//! nothing.
//!
//! Lengths come from the wire and are never trusted: nesting depth and the memory a decoded value
//! may take are capped by [`Limits`], and every read is bounds-checked. After an error the decoder's
//! position and tables are unspecified; drop it.

use std::borrow::Cow;
use std::sync::Arc;

use super::error::DecodeError;
use super::string::{decode_cesu_into, decode_chunk, flush_pending, scan_units};
use super::value::{ClassDef, List, Map, Object, Value};

/// Caps that protect the decoder from hostile or corrupt input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of lists, maps and objects (default 128).
    pub max_depth: usize,
    /// Maximum bytes a decode may allocate for values, strings, binaries and the stream's tables
    /// (default 64 MiB, eight times Dubbo's default payload limit).
    pub max_alloc: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 128,
            max_alloc: 64 * 1024 * 1024,
        }
    }
}

/// A class definition as the stream knows it: always its field count and where it was written,
/// and the built definition once something needed it.
#[derive(Debug, Clone)]
struct ClassSlot {
    field_count: usize,
    /// Offset just after the `C`.
    offset: usize,
    def: Option<Arc<ClassDef>>,
}

/// A type name as the stream knows it: where its string was written, and the name once built.
#[derive(Debug, Clone)]
struct TypeSlot {
    offset: usize,
    name: Option<Arc<str>>,
}

/// Never reserve more than this many elements ahead from a wire length; vectors grow as real
/// elements arrive, so a lying length costs nothing.
const MAX_PREALLOC: usize = 1024;

/// A decoder over one Hessian stream held in memory.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    depth: usize,
    alloc: usize,
    classes: Vec<ClassSlot>,
    types: Vec<TypeSlot>,
    refs: usize,
}

/// Decodes exactly one value from `input` (a fresh stream) and requires that it uses every byte.
pub fn from_slice(input: &[u8]) -> Result<Value, DecodeError> {
    let mut decoder = Decoder::new(input);
    let value = decoder.read_value()?;
    decoder.finish()?;
    Ok(value)
}

/// Skips one value at the start of `input` (a fresh stream) without building it; returns how
/// many bytes it took.
pub fn skip(input: &[u8]) -> Result<usize, DecodeError> {
    let mut decoder = Decoder::new(input);
    decoder.skip_value()?;
    Ok(decoder.position())
}

// === impl Decoder ===

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`, with default [`Limits`].
    pub fn new(input: &'a [u8]) -> Self {
        Self::with_limits(input, Limits::default())
    }

    /// A decoder at the start of `input` with the given limits.
    pub fn with_limits(input: &'a [u8], limits: Limits) -> Self {
        Self {
            input,
            pos: 0,
            limits,
            depth: 0,
            alloc: 0,
            classes: Vec::new(),
            types: Vec::new(),
            refs: 0,
        }
    }

    /// A decoder positioned at `position` of `input`, with empty stream tables and default
    /// limits.
    ///
    /// Only valid where nothing before `position` defined classes, types or references, for
    /// example after the leading strings of a Dubbo body. Error offsets stay relative to `input`.
    pub fn starting_at(input: &'a [u8], position: usize) -> Self {
        let mut decoder = Self::new(input);
        decoder.pos = position;
        decoder
    }

    /// Sets the limits for the rest of the stream.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    /// `true` when every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.input.len().checked_sub(self.pos) {
            Some(0) | None => Ok(()),
            Some(remaining) => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                remaining,
            }),
        }
    }

    /// How many lists, maps and objects have started so far (the next value reference index).
    pub fn ref_count(&self) -> usize {
        self.refs
    }

    // --- primitive input ---------------------------------------------------------------------

    fn eof(&self, context: &'static str) -> DecodeError {
        DecodeError::UnexpectedEof {
            offset: self.input.len(),
            context,
        }
    }

    fn next_byte(&mut self, context: &'static str) -> Result<u8, DecodeError> {
        let b = self.peek().ok_or_else(|| self.eof(context))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.eof(context))?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or_else(|| self.eof(context))?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, context: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, context)?;
        <[u8; N]>::try_from(bytes).map_err(|_| self.eof(context))
    }

    fn u16_be(&mut self, context: &'static str) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_be_bytes(self.array(context)?)))
    }

    fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        match self.alloc.checked_add(bytes) {
            Some(total) if total <= self.limits.max_alloc => {
                self.alloc = total;
                Ok(())
            }
            _ => Err(DecodeError::AllocLimit {
                offset: self.pos,
                limit: self.limits.max_alloc,
            }),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), DecodeError> {
        if self.depth >= self.limits.max_depth {
            return Err(DecodeError::DepthLimit {
                offset: at,
                limit: self.limits.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // --- numbers -----------------------------------------------------------------------------

    /// The body of an int-encoded value whose tag byte was already read.
    fn int_body(&mut self, tag: u8) -> Result<i32, DecodeError> {
        Ok(match tag {
            0x80..=0xBF => i32::from(tag) - 0x90,
            0xC0..=0xCF => ((i32::from(tag) - 0xC8) << 8) | i32::from(self.next_byte("an int")?),
            0xD0..=0xD7 => {
                let [b1, b0] = self.array("an int")?;
                ((i32::from(tag) - 0xD4) << 16) | (i32::from(b1) << 8) | i32::from(b0)
            }
            _ => i32::from_be_bytes(self.array("an int")?),
        })
    }

    /// The body of a long-encoded value whose tag byte was already read.
    fn long_body(&mut self, tag: u8) -> Result<i64, DecodeError> {
        Ok(match tag {
            0xD8..=0xEF => i64::from(tag) - 0xE0,
            0xF0..=0xFF => ((i64::from(tag) - 0xF8) << 8) | i64::from(self.next_byte("a long")?),
            0x38..=0x3F => {
                let [b1, b0] = self.array("a long")?;
                ((i64::from(tag) - 0x3C) << 16) | (i64::from(b1) << 8) | i64::from(b0)
            }
            b'Y' => i64::from(i32::from_be_bytes(self.array("a long")?)),
            _ => i64::from_be_bytes(self.array("a long")?),
        })
    }

    /// The body of a double-encoded value whose tag byte was already read.
    fn double_body(&mut self, tag: u8) -> Result<f64, DecodeError> {
        Ok(match tag {
            0x5B => 0.0,
            0x5C => 1.0,
            0x5D => f64::from(i8::from_be_bytes(self.array("a double")?)),
            0x5E => f64::from(i16::from_be_bytes(self.array("a double")?)),
            // Int32 thousandths, computed exactly as hessian-lite does (`0.001 * mills`).
            0x5F => 0.001 * f64::from(i32::from_be_bytes(self.array("a double")?)),
            _ => f64::from_bits(u64::from_be_bytes(self.array("a double")?)),
        })
    }

    /// An integer where the grammar says `int` (lengths, indexes). Like Java's `readInt`, long
    /// encodings are accepted too.
    fn read_integer(&mut self, context: &'static str) -> Result<i64, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte(context)?;
        match tag {
            0x80..=0xD7 | b'I' => Ok(i64::from(self.int_body(tag)?)),
            0xD8..=0xFF | 0x38..=0x3F | b'Y' | b'L' => self.long_body(tag),
            _ => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte: tag,
                expected: context,
            }),
        }
    }

    /// A non-negative count or index.
    fn read_count(&mut self, context: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let value = self.read_integer(context)?;
        usize::try_from(value).map_err(|_| DecodeError::InvalidLength {
            offset: at,
            what: context,
            value,
        })
    }

    /// Reads a boolean.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.next_byte("a boolean")? {
            b'T' => Ok(true),
            b'F' => Ok(false),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a boolean",
            }),
        }
    }

    /// Reads an int; a long encoding is accepted if the value fits (as Java's `readInt` does).
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let at = self.pos;
        let value = self.read_integer("an int")?;
        i32::try_from(value).map_err(|_| DecodeError::OutOfRange {
            offset: at,
            value,
            target: "i32",
        })
    }

    /// Reads a long or an int.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        self.read_integer("a long")
    }

    /// Reads a double (any double encoding).
    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte("a double")?;
        match tag {
            0x5B..=0x5F | b'D' => self.double_body(tag),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a double",
            }),
        }
    }

    // --- strings and binaries ----------------------------------------------------------------

    /// Reads a string or `N` (`None`), borrowing the input when the string is one chunk of valid
    /// UTF-8 (the common case), allocating only for surrogates or several chunks.
    pub fn read_str(&mut self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte("a string")?;
        match tag {
            b'N' => Ok(None),
            0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => Ok(Some(self.string_after_tag(at, tag)?)),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a string or null",
            }),
        }
    }

    /// Reads a binary or `N` (`None`), borrowing the input unless the binary is chunked.
    pub fn read_binary(&mut self) -> Result<Option<Cow<'a, [u8]>>, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte("a binary")?;
        match tag {
            b'N' => Ok(None),
            0x20..=0x2F | 0x34..=0x37 | b'A' | b'B' => Ok(Some(self.binary_after_tag(at, tag)?)),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a binary or null",
            }),
        }
    }

    /// Length in UTF-16 units of a string chunk, and whether it is the final chunk.
    fn string_chunk(&mut self, at: usize, tag: u8) -> Result<(usize, bool), DecodeError> {
        match tag {
            0x00..=0x1F => Ok((usize::from(tag), true)),
            0x30..=0x33 => {
                let low = self.next_byte("a string length")?;
                Ok(((usize::from(tag - 0x30) << 8) | usize::from(low), true))
            }
            b'S' => Ok((self.u16_be("a string length")?, true)),
            b'R' => Ok((self.u16_be("a string length")?, false)),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a string chunk",
            }),
        }
    }

    fn string_after_tag(&mut self, at: usize, first: u8) -> Result<Cow<'a, str>, DecodeError> {
        let (mut units, mut last) = self.string_chunk(at, first)?;
        let mut owned: Option<String> = None;
        let mut pending = None;
        loop {
            let start = self.pos;
            let end = scan_units(self.input, start, units)?;
            let bytes = self.take(end - start, "string data")?;
            let out = match owned.as_mut() {
                None if last => return decode_chunk(bytes, start),
                None => owned.insert(String::new()),
                Some(out) => out,
            };
            // Chunks are bounded by the input, so building the string never outgrows it.
            match std::str::from_utf8(bytes) {
                Ok(s) if pending.is_none() => out.push_str(s),
                _ => decode_cesu_into(bytes, start, out, &mut pending)?,
            }
            if last {
                flush_pending(out, &mut pending);
                break;
            }
            let chunk_at = self.pos;
            let tag = self.next_byte("a string chunk")?;
            (units, last) = self.string_chunk(chunk_at, tag)?;
        }
        Ok(Cow::Owned(owned.unwrap_or_default()))
    }

    fn skip_string_after_tag(&mut self, at: usize, first: u8) -> Result<(), DecodeError> {
        let (mut units, mut last) = self.string_chunk(at, first)?;
        loop {
            self.pos = scan_units(self.input, self.pos, units)?;
            if last {
                return Ok(());
            }
            let chunk_at = self.pos;
            let tag = self.next_byte("a string chunk")?;
            (units, last) = self.string_chunk(chunk_at, tag)?;
        }
    }

    /// Length of a binary chunk, and whether it is the final chunk.
    fn binary_chunk(&mut self, at: usize, tag: u8) -> Result<(usize, bool), DecodeError> {
        match tag {
            0x20..=0x2F => Ok((usize::from(tag - 0x20), true)),
            0x34..=0x37 => {
                let low = self.next_byte("a binary length")?;
                Ok(((usize::from(tag - 0x34) << 8) | usize::from(low), true))
            }
            b'B' => Ok((self.u16_be("a binary length")?, true)),
            b'A' => Ok((self.u16_be("a binary length")?, false)),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a binary chunk",
            }),
        }
    }

    fn binary_after_tag(&mut self, at: usize, first: u8) -> Result<Cow<'a, [u8]>, DecodeError> {
        let (mut len, mut last) = self.binary_chunk(at, first)?;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let bytes = self.take(len, "binary data")?;
            match owned.as_mut() {
                None if last => return Ok(Cow::Borrowed(bytes)),
                None => owned = Some(bytes.to_vec()),
                Some(out) => out.extend_from_slice(bytes),
            }
            if last {
                break;
            }
            let chunk_at = self.pos;
            let tag = self.next_byte("a binary chunk")?;
            (len, last) = self.binary_chunk(chunk_at, tag)?;
        }
        Ok(Cow::Owned(owned.unwrap_or_default()))
    }

    fn skip_binary_after_tag(&mut self, at: usize, first: u8) -> Result<(), DecodeError> {
        let (mut len, mut last) = self.binary_chunk(at, first)?;
        loop {
            self.take(len, "binary data")?;
            if last {
                return Ok(());
            }
            let chunk_at = self.pos;
            let tag = self.next_byte("a binary chunk")?;
            (len, last) = self.binary_chunk(chunk_at, tag)?;
        }
    }

    /// A string where the grammar requires one (class and field names, type names).
    fn read_name(&mut self, context: &'static str) -> Result<Cow<'a, str>, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte(context)?;
        match tag {
            0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => self.string_after_tag(at, tag),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: context,
            }),
        }
    }

    fn skip_name(&mut self, context: &'static str) -> Result<(), DecodeError> {
        let at = self.pos;
        let tag = self.next_byte(context)?;
        match tag {
            0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => self.skip_string_after_tag(at, tag),
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: context,
            }),
        }
    }

    // --- stream tables -----------------------------------------------------------------------

    /// Reads a class definition (the `C` already consumed) into the class table, building it
    /// only when `build` is set.
    fn class_def(&mut self, build: bool) -> Result<(), DecodeError> {
        let offset = self.pos;
        self.charge(size_of::<ClassSlot>())?;
        let def = if build {
            let name = self.read_name("a class name")?.into_owned();
            let count = self.field_count()?;
            let mut fields = Vec::with_capacity(count.min(MAX_PREALLOC));
            self.charge(name.len())?;
            for _ in 0..count {
                let field = self.read_name("a field name")?.into_owned();
                self.charge(field.len() + size_of::<String>())?;
                fields.push(field);
            }
            Some(Arc::new(ClassDef { name, fields }))
        } else {
            self.skip_name("a class name")?;
            let count = self.field_count()?;
            for _ in 0..count {
                self.skip_name("a field name")?;
            }
            self.classes.push(ClassSlot {
                field_count: count,
                offset,
                def: None,
            });
            return Ok(());
        };
        let field_count = def.as_ref().map_or(0, |d| d.fields.len());
        self.classes.push(ClassSlot {
            field_count,
            offset,
            def,
        });
        Ok(())
    }

    fn field_count(&mut self) -> Result<usize, DecodeError> {
        let count = self.read_count("a field count")?;
        // Every field name takes at least one byte, so a larger count cannot be satisfied by
        // this input; saying so now avoids walking names that are not there.
        if count > self.input.len().saturating_sub(self.pos) {
            return Err(self.eof("field names"));
        }
        Ok(count)
    }

    /// Looks up class definition `index` (read at `at`).
    fn class_slot(&self, at: usize, index: usize) -> Result<&ClassSlot, DecodeError> {
        self.classes.get(index).ok_or(DecodeError::UnknownClass {
            offset: at,
            index: index as u64,
            defined: self.classes.len(),
        })
    }

    /// The built definition for a slot, building it from the input if it was only skipped.
    fn class_def_at(&mut self, at: usize, index: usize) -> Result<Arc<ClassDef>, DecodeError> {
        let slot = self.class_slot(at, index)?;
        if let Some(def) = &slot.def {
            return Ok(Arc::clone(def));
        }
        let mut sub = self.sub_decoder(slot.offset);
        sub.class_def(true)?;
        self.alloc = sub.alloc;
        let def = sub
            .classes
            .pop()
            .and_then(|s| s.def)
            .ok_or(DecodeError::UnknownClass {
                offset: at,
                index: index as u64,
                defined: self.classes.len(),
            })?;
        if let Some(slot) = self.classes.get_mut(index) {
            slot.def = Some(Arc::clone(&def));
        }
        Ok(def)
    }

    /// A decoder over the same input at `offset`, with fresh tables, sharing this one's budget:
    /// used to build names that were skipped earlier (strings need no stream state).
    fn sub_decoder(&self, offset: usize) -> Decoder<'a> {
        Decoder {
            input: self.input,
            pos: offset,
            limits: self.limits,
            depth: self.depth,
            alloc: self.alloc,
            classes: Vec::new(),
            types: Vec::new(),
            refs: 0,
        }
    }

    /// Reads a type (a name, appended to the type table, or an index into it); returns the name
    /// only when `build` is set.
    fn read_type(&mut self, build: bool) -> Result<Option<Arc<str>>, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte("a type")?;
        match tag {
            0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => {
                self.charge(size_of::<TypeSlot>())?;
                let name = if build {
                    let name: Arc<str> = Arc::from(self.string_after_tag(at, tag)?.as_ref());
                    self.charge(name.len())?;
                    Some(name)
                } else {
                    self.skip_string_after_tag(at, tag)?;
                    None
                };
                self.types.push(TypeSlot {
                    offset: at,
                    name: name.clone(),
                });
                Ok(name)
            }
            0x80..=0xD7 | b'I' | 0xD8..=0xFF | 0x38..=0x3F | b'Y' | b'L' => {
                // Rewind so the shared integer reader sees the tag.
                self.pos = at;
                let index = self.read_integer("a type reference")?;
                let slot = usize::try_from(index)
                    .ok()
                    .filter(|&i| i < self.types.len())
                    .ok_or(DecodeError::UnknownType {
                        offset: at,
                        index: index as u64,
                        defined: self.types.len(),
                    })?;
                if build {
                    self.type_name_at(slot).map(Some)
                } else {
                    Ok(None)
                }
            }
            byte => Err(DecodeError::UnexpectedByte {
                offset: at,
                byte,
                expected: "a type name or type reference",
            }),
        }
    }

    fn type_name_at(&mut self, index: usize) -> Result<Arc<str>, DecodeError> {
        let Some(slot) = self.types.get(index) else {
            return Err(DecodeError::UnknownType {
                offset: self.pos,
                index: index as u64,
                defined: self.types.len(),
            });
        };
        if let Some(name) = &slot.name {
            return Ok(Arc::clone(name));
        }
        let mut sub = self.sub_decoder(slot.offset);
        let name: Arc<str> = Arc::from(sub.read_name("a type name")?.as_ref());
        self.alloc = sub.alloc;
        self.charge(name.len())?;
        if let Some(slot) = self.types.get_mut(index) {
            slot.name = Some(Arc::clone(&name));
        }
        Ok(name)
    }

    fn check_ref(&self, at: usize, index: i64) -> Result<u32, DecodeError> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.refs)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or(DecodeError::UnknownRef {
                offset: at,
                index: index as u64,
                defined: self.refs,
            })
    }

    // --- values ------------------------------------------------------------------------------

    /// Reads one complete value.
    pub fn read_value(&mut self) -> Result<Value, DecodeError> {
        loop {
            let at = self.pos;
            let tag = self.next_byte("a value")?;
            let value = match tag {
                b'N' => Value::Null,
                b'T' => Value::Bool(true),
                b'F' => Value::Bool(false),
                0x80..=0xD7 | b'I' => Value::Int(self.int_body(tag)?),
                0xD8..=0xFF | 0x38..=0x3F | b'Y' | b'L' => Value::Long(self.long_body(tag)?),
                0x5B..=0x5F | b'D' => Value::Double(self.double_body(tag)?),
                0x4A => Value::Date(i64::from_be_bytes(self.array("a date")?)),
                0x4B => {
                    let minutes = i64::from(i32::from_be_bytes(self.array("a date")?));
                    Value::Date(minutes * 60_000)
                }
                0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => {
                    let s = self.string_after_tag(at, tag)?.into_owned();
                    self.charge(s.len())?;
                    Value::String(s)
                }
                0x20..=0x2F | 0x34..=0x37 | b'A' | b'B' => {
                    let b = self.binary_after_tag(at, tag)?.into_owned();
                    self.charge(b.len())?;
                    Value::Binary(b)
                }
                // A definition is not a value: the value it introduces follows.
                b'C' => {
                    self.class_def(true)?;
                    continue;
                }
                b'H' | b'M' => Value::Map(self.map_after_tag(at, tag)?),
                b'U' | b'V' | b'W' | b'X' | 0x70..=0x7F => {
                    Value::List(self.list_after_tag(at, tag)?)
                }
                b'O' | 0x60..=0x6F => Value::Object(self.object_after_tag(at, tag)?),
                b'Q' => {
                    let index = self.read_integer("a reference index")?;
                    Value::Ref(self.check_ref(at, index)?)
                }
                byte => {
                    return Err(DecodeError::UnexpectedByte {
                        offset: at,
                        byte,
                        expected: "a value",
                    });
                }
            };
            return Ok(value);
        }
    }

    fn list_header(&mut self, tag: u8, build: bool) -> Result<ListHeader, DecodeError> {
        let (type_name, len) = match tag {
            b'V' => {
                let t = self.read_type(build)?;
                (t, Some(self.read_count("a list length")?))
            }
            0x70..=0x77 => (self.read_type(build)?, Some(usize::from(tag - 0x70))),
            b'X' => (None, Some(self.read_count("a list length")?)),
            0x78..=0x7F => (None, Some(usize::from(tag - 0x78))),
            b'U' => (self.read_type(build)?, None),
            _ => (None, None),
        };
        let typed = matches!(tag, b'V' | b'U' | 0x70..=0x77);
        Ok(ListHeader {
            type_name,
            typed,
            len,
        })
    }

    fn list_after_tag(&mut self, at: usize, tag: u8) -> Result<List, DecodeError> {
        let header = self.list_header(tag, true)?;
        self.enter(at)?;
        // The list gets its reference index before its elements (pre-order).
        self.refs += 1;
        let mut items = Vec::new();
        match header.len {
            Some(len) => {
                items.reserve(len.min(MAX_PREALLOC).min(self.remaining().len()));
                for _ in 0..len {
                    self.charge(size_of::<Value>())?;
                    items.push(self.read_value()?);
                }
            }
            None => {
                while !self.try_read_end()? {
                    self.charge(size_of::<Value>())?;
                    items.push(self.read_value()?);
                }
            }
        }
        self.leave();
        Ok(List {
            type_name: if header.typed {
                header.type_name.map(|t| t.to_string())
            } else {
                None
            },
            items,
            variable_length: header.len.is_none(),
        })
    }

    fn map_after_tag(&mut self, at: usize, tag: u8) -> Result<Map, DecodeError> {
        let type_name = if tag == b'M' {
            self.read_type(true)?.map(|t| t.to_string())
        } else {
            None
        };
        self.enter(at)?;
        self.refs += 1;
        let mut entries = Vec::new();
        while !self.try_read_end()? {
            self.charge(2 * size_of::<Value>())?;
            let key = self.read_value()?;
            let value = self.read_value()?;
            entries.push((key, value));
        }
        self.leave();
        Ok(Map { type_name, entries })
    }

    fn object_after_tag(&mut self, at: usize, tag: u8) -> Result<Object, DecodeError> {
        let index = if tag == b'O' {
            self.read_count("a class definition index")?
        } else {
            usize::from(tag - 0x60)
        };
        let class = self.class_def_at(at, index)?;
        self.enter(at)?;
        self.refs += 1;
        let mut fields = Vec::with_capacity(class.fields.len().min(MAX_PREALLOC));
        for _ in 0..class.fields.len() {
            self.charge(size_of::<Value>())?;
            fields.push(self.read_value()?);
        }
        self.leave();
        Ok(Object { class, fields })
    }

    /// Consumes the `Z` that ends a variable-length list or a map, if it is next; `Ok(false)`
    /// when another element follows.
    pub fn try_read_end(&mut self) -> Result<bool, DecodeError> {
        match self.peek() {
            Some(b'Z') => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.eof("a list or map")),
        }
    }

    /// Reads the start of a map (`H`, or `M` and its type) whose entries the caller reads one by
    /// one until [`try_read_end`](Self::try_read_end) returns `true`; returns the type name.
    ///
    /// Used for Dubbo attachments, which are read entry by entry without building a [`Map`].
    pub fn read_map_start(&mut self) -> Result<Option<Arc<str>>, DecodeError> {
        let at = self.pos;
        let tag = self.next_byte("a map")?;
        let type_name = match tag {
            b'H' => None,
            b'M' => self.read_type(true)?,
            byte => {
                return Err(DecodeError::UnexpectedByte {
                    offset: at,
                    byte,
                    expected: "a map",
                });
            }
        };
        self.refs += 1;
        Ok(type_name)
    }

    /// Skips one complete value without building it.
    ///
    /// Class definitions met on the way are recorded (their field counts are needed to skip
    /// instances, and later values may use them); type names and references are checked but not
    /// built.
    pub fn skip_value(&mut self) -> Result<(), DecodeError> {
        loop {
            let at = self.pos;
            let tag = self.next_byte("a value")?;
            match tag {
                b'N' | b'T' | b'F' | 0x80..=0xBF | 0xD8..=0xEF | 0x5B | 0x5C => {}
                0xC0..=0xCF | 0xF0..=0xFF | 0x5D => {
                    self.take(1, "a number")?;
                }
                0xD0..=0xD7 | 0x38..=0x3F | 0x5E => {
                    self.take(2, "a number")?;
                }
                b'I' | b'Y' | 0x4B | 0x5F => {
                    self.take(4, "a number")?;
                }
                b'L' | b'D' | 0x4A => {
                    self.take(8, "a number")?;
                }
                // Short ASCII strings dominate Dubbo bodies: step over them without the chunk
                // machinery.
                0x00..=0x1F
                    if self
                        .input
                        .get(self.pos..self.pos + usize::from(tag))
                        .is_some_and(<[u8]>::is_ascii) =>
                {
                    self.pos += usize::from(tag);
                }
                0x00..=0x1F | 0x30..=0x33 | b'R' | b'S' => self.skip_string_after_tag(at, tag)?,
                0x20..=0x2F | 0x34..=0x37 | b'A' | b'B' => self.skip_binary_after_tag(at, tag)?,
                b'C' => {
                    self.class_def(false)?;
                    continue;
                }
                b'H' | b'M' => {
                    if tag == b'M' {
                        self.read_type(false)?;
                    }
                    self.enter(at)?;
                    self.refs += 1;
                    while !self.try_read_end()? {
                        self.skip_value()?;
                        self.skip_value()?;
                    }
                    self.leave();
                }
                b'U' | b'V' | b'W' | b'X' | 0x70..=0x7F => {
                    let header = self.list_header(tag, false)?;
                    self.enter(at)?;
                    self.refs += 1;
                    match header.len {
                        Some(len) => {
                            for _ in 0..len {
                                self.skip_value()?;
                            }
                        }
                        None => {
                            while !self.try_read_end()? {
                                self.skip_value()?;
                            }
                        }
                    }
                    self.leave();
                }
                b'O' | 0x60..=0x6F => {
                    let index = if tag == b'O' {
                        self.read_count("a class definition index")?
                    } else {
                        usize::from(tag - 0x60)
                    };
                    let fields = self.class_slot(at, index)?.field_count;
                    self.enter(at)?;
                    self.refs += 1;
                    for _ in 0..fields {
                        self.skip_value()?;
                    }
                    self.leave();
                }
                b'Q' => {
                    let index = self.read_integer("a reference index")?;
                    self.check_ref(at, index)?;
                }
                byte => {
                    return Err(DecodeError::UnexpectedByte {
                        offset: at,
                        byte,
                        expected: "a value",
                    });
                }
            }
            return Ok(());
        }
    }
}

/// What a list's header said.
struct ListHeader {
    type_name: Option<Arc<str>>,
    typed: bool,
    /// `None` for variable-length lists.
    len: Option<usize>,
}
