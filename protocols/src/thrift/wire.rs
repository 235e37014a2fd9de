//! A bounds-checked cursor over a byte slice that tells "need more bytes" apart from "invalid".
//!
//! Every read in the Thrift module goes through [`Cursor`], so no decoding path can index out of
//! bounds. A cursor is either over a *stream* prefix (running out means "wait for more bytes",
//! unless the value would end past the maximum message size) or over a *complete* frame (running
//! out means the frame is truncated).

use bytes::BufMut;

use super::ThriftError;

/// Why a parse stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The input is a valid prefix; at least `needed` bytes (counted from the cursor's start) are
    /// required before parsing can make progress.
    Incomplete {
        /// Lower bound on the total input length required.
        needed: usize,
    },
    /// The input can never become valid.
    Invalid(ThriftError),
}

impl From<ThriftError> for Stop {
    fn from(error: ThriftError) -> Self {
        Stop::Invalid(error)
    }
}

/// Result of a parse step that may run out of input.
pub(crate) type Parse<T> = Result<T, Stop>;

/// Turns a parse over a stream prefix into the public "`Ok(None)` = need more bytes" shape.
pub(crate) fn finish<T>(result: Parse<T>) -> Result<Option<T>, ThriftError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Stop::Incomplete { .. }) => Ok(None),
        Err(Stop::Invalid(error)) => Err(error),
    }
}

/// Turns a parse over a complete buffer into a plain result (running out cannot happen there,
/// but map it to `Truncated` rather than trusting that).
pub(crate) fn complete<T>(result: Parse<T>, available: usize) -> Result<T, ThriftError> {
    match result {
        Ok(value) => Ok(value),
        Err(Stop::Incomplete { needed }) => Err(ThriftError::Truncated {
            offset: available,
            needed,
            available,
        }),
        Err(Stop::Invalid(error)) => Err(error),
    }
}

/// What running out of bytes means for a cursor.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// A prefix of a stream: more may come, up to `max` bytes in total.
    Stream { max: usize },
    /// A complete frame: nothing more will come.
    Complete,
}

/// A read position over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to positions in error offsets, so errors inside a frame's payload point into the frame.
    base: usize,
    bound: Bound,
}

impl<'a> Cursor<'a> {
    /// A cursor over a stream prefix; values may end at most `max` bytes after the start.
    pub(crate) fn stream(buf: &'a [u8], max: usize) -> Self {
        Cursor {
            buf,
            pos: 0,
            base: 0,
            bound: Bound::Stream { max },
        }
    }

    /// A cursor over a complete frame.
    pub(crate) fn complete(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            base: 0,
            bound: Bound::Complete,
        }
    }

    /// Report error offsets as `base + position`.
    pub(crate) fn with_base(mut self, base: usize) -> Self {
        self.base = base;
        self
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The error offset of the current position.
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The error offset of an earlier position.
    pub(crate) fn offset_of(&self, pos: usize) -> usize {
        self.base.saturating_add(pos)
    }

    /// Bytes left in the buffer.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Checks that `n` more bytes are available and returns the position after them.
    fn reserve(&self, n: usize) -> Parse<usize> {
        let end = self.pos.saturating_add(n);
        if let Bound::Stream { max } = self.bound
            && end > max
        {
            return Err(Stop::Invalid(ThriftError::MessageTooLarge {
                offset: self.offset(),
                needed: end,
                max,
            }));
        }
        if end <= self.buf.len() {
            return Ok(end);
        }
        match self.bound {
            Bound::Stream { .. } => Err(Stop::Incomplete { needed: end }),
            Bound::Complete => Err(Stop::Invalid(ThriftError::Truncated {
                offset: self.offset(),
                needed: end,
                available: self.buf.len(),
            })),
        }
    }

    /// Consumes `n` bytes and returns them.
    pub(crate) fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        let end = self.reserve(n)?;
        let bytes = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    /// Consumes `n` bytes without looking at them.
    pub(crate) fn skip(&mut self, n: usize) -> Parse<()> {
        self.pos = self.reserve(n)?;
        Ok(())
    }

    /// Consumes exactly `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Parse<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// The next byte without consuming it.
    pub(crate) fn peek_u8(&self) -> Parse<u8> {
        self.reserve(1)?;
        Ok(self.buf.get(self.pos).copied().unwrap_or_default())
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Parse<u8> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    /// Big-endian u16.
    pub(crate) fn u16(&mut self) -> Parse<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Big-endian i32.
    pub(crate) fn i32(&mut self) -> Parse<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// An unsigned LEB128 varint of at most `max_bytes` bytes (compact protocol and THeader).
    pub(crate) fn varint(&mut self, max_bytes: usize) -> Parse<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            let shift = 7 * i;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Stop::Invalid(ThriftError::Malformed {
            offset: self.offset_of(start),
            reason: "varint longer than allowed",
        }))
    }

    /// A compact 32-bit varint as Java reads it: at most 5 bytes, truncated to 32 bits.
    pub(crate) fn varint32(&mut self) -> Parse<u32> {
        Ok(self.varint(5)? as u32)
    }

    /// A compact length (string or container size): a 32-bit varint that must not be negative.
    pub(crate) fn varint_len(&mut self) -> Parse<usize> {
        let offset = self.offset();
        let value = self.varint32()?;
        if value > i32::MAX as u32 {
            return Err(Stop::Invalid(ThriftError::NegativeLength {
                offset,
                value: i64::from(value as i32),
            }));
        }
        Ok(value as usize)
    }

    /// A binary-protocol length: a big-endian i32 that must not be negative.
    pub(crate) fn i32_len(&mut self) -> Parse<usize> {
        let offset = self.offset();
        let value = self.i32()?;
        usize::try_from(value).map_err(|_| {
            Stop::Invalid(ThriftError::NegativeLength {
                offset,
                value: i64::from(value),
            })
        })
    }
}

/// Appends `value` as an unsigned LEB128 varint.
pub(crate) fn put_varint(dst: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        dst.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}
