//! Hessian string data: lengths in UTF-16 code units, bytes in UTF-8 of each unit.
//!
//! Java writes every UTF-16 unit on its own, so a supplementary character (an emoji) becomes two
//! 3-byte surrogate sequences (CESU-8) and counts 2 towards the length. Other encoders write plain
//! 4-byte UTF-8, which also counts 2. This module finds where `n` units end, turns such bytes into
//! a Rust string (borrowing when they are already valid UTF-8), and writes Java's form.

use std::borrow::Cow;

use bytes::BufMut;

use super::error::DecodeError;

/// The number of UTF-16 units of `s` (Java's `String.length()`).
pub(crate) fn utf16_len(s: &str) -> usize {
    // One unit per character start, plus one more for each 4-byte (supplementary) lead.
    s.as_bytes()
        .iter()
        .map(|&b| usize::from(b & 0xC0 != 0x80) + usize::from(b >= 0xF0))
        .sum()
}

/// Finds the end of `units` UTF-16 units of string data starting at `start`.
///
/// Returns the end offset (exclusive). Only lead bytes are inspected: continuation bytes are
/// checked later, when the data is turned into a string (or never, when it is skipped).
#[inline]
pub(crate) fn scan_units(input: &[u8], start: usize, units: usize) -> Result<usize, DecodeError> {
    // Fast path: ASCII data is one byte per unit.
    if let Some(end) = start.checked_add(units)
        && let Some(run) = input.get(start..end)
        && run.is_ascii()
    {
        return Ok(end);
    }
    let mut pos = start;
    let mut left = units;
    while left > 0 {
        let Some(&lead) = input.get(pos) else {
            return Err(DecodeError::UnexpectedEof {
                offset: input.len(),
                context: "string data",
            });
        };
        let (len, counts) = match lead {
            0x00..=0x7F => (1, 1),
            0xC0..=0xDF => (2, 1),
            0xE0..=0xEF => (3, 1),
            // A 4-byte sequence is a whole supplementary character: two units.
            0xF0..=0xF7 if left >= 2 => (4, 2),
            _ => return Err(DecodeError::InvalidUtf8 { offset: pos }),
        };
        pos += len;
        left -= counts;
    }
    if pos > input.len() {
        return Err(DecodeError::UnexpectedEof {
            offset: input.len(),
            context: "string data",
        });
    }
    Ok(pos)
}

/// Turns one chunk of string data into text, borrowing it when it is valid UTF-8.
///
/// `base` is the chunk's offset in the input, for error positions.
#[inline]
pub(crate) fn decode_chunk(bytes: &[u8], base: usize) -> Result<Cow<'_, str>, DecodeError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len());
            let mut pending = None;
            decode_cesu_into(bytes, base, &mut out, &mut pending)?;
            flush_pending(&mut out, &mut pending);
            Ok(Cow::Owned(out))
        }
    }
}

/// Appends CESU-8 / UTF-8 data to `out`, joining surrogate pairs; `pending` carries a high
/// surrogate across chunk boundaries (encoders other than Java may split a pair).
pub(crate) fn decode_cesu_into(
    bytes: &[u8],
    base: usize,
    out: &mut String,
    pending: &mut Option<u16>,
) -> Result<(), DecodeError> {
    let mut i = 0;
    while let Some(&b0) = bytes.get(i) {
        let at = base + i;
        let bad = || DecodeError::InvalidUtf8 { offset: at };
        let cont = |k: usize| -> Result<u32, DecodeError> {
            match bytes.get(i + k) {
                Some(&b) if b & 0xC0 == 0x80 => Ok(u32::from(b & 0x3F)),
                _ => Err(DecodeError::InvalidUtf8 { offset: at + k }),
            }
        };
        let (unit, len): (u32, usize) = match b0 {
            0x00..=0x7F => (u32::from(b0), 1),
            0xC0..=0xDF => ((u32::from(b0 & 0x1F) << 6) | cont(1)?, 2),
            0xE0..=0xEF => ((u32::from(b0 & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?, 3),
            0xF0..=0xF7 => (
                (u32::from(b0 & 0x07) << 18) | (cont(1)? << 12) | (cont(2)? << 6) | cont(3)?,
                4,
            ),
            _ => return Err(bad()),
        };
        i += len;
        match unit {
            0xD800..=0xDBFF => {
                flush_pending(out, pending);
                // Lossless narrowing: the range check above bounds the value.
                *pending = u16::try_from(unit).ok();
            }
            0xDC00..=0xDFFF => match pending.take() {
                Some(high) => {
                    let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (unit - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => out.push(char::REPLACEMENT_CHARACTER),
            },
            _ => {
                flush_pending(out, pending);
                out.push(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
    }
    Ok(())
}

/// Emits a dangling high surrogate as U+FFFD.
pub(crate) fn flush_pending(out: &mut String, pending: &mut Option<u16>) {
    if pending.take().is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
}

/// Appends `s` in Java's encoding: UTF-8 for BMP characters, two 3-byte surrogate sequences
/// for supplementary ones.
pub(crate) fn encode_cesu(s: &str, out: &mut impl BufMut) {
    // Without 4-byte sequences, UTF-8 and Java's encoding are the same bytes.
    if !s.as_bytes().iter().any(|&b| b >= 0xF0) {
        out.put_slice(s.as_bytes());
        return;
    }
    for c in s.chars() {
        let mut units = [0u16; 2];
        for &unit in c.encode_utf16(&mut units).iter() {
            push_unit(unit, out);
        }
    }
}

/// The number of bytes Java writes for one UTF-16 unit.
pub(crate) fn unit_len(unit: u16) -> usize {
    match unit {
        0..0x80 => 1,
        0x80..0x800 => 2,
        _ => 3,
    }
}

fn push_unit(unit: u16, out: &mut impl BufMut) {
    // Truncating casts are the point here: each keeps the low bits of one UTF-8 byte.
    let u = unit;
    match unit_len(u) {
        1 => out.put_u8(u as u8),
        2 => out.put_slice(&[0xC0 | (u >> 6) as u8, 0x80 | (u & 0x3F) as u8]),
        _ => out.put_slice(&[
            0xE0 | (u >> 12) as u8,
            0x80 | ((u >> 6) & 0x3F) as u8,
            0x80 | (u & 0x3F) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_is_two_surrogate_sequences() {
        let mut out = Vec::new();
        encode_cesu("😀", &mut out);
        assert_eq!(out, [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(decode_chunk(&out, 0).unwrap(), "😀");
    }

    #[test]
    fn plain_utf8_four_bytes_accepted() {
        let bytes = "a😀".as_bytes();
        assert_eq!(scan_units(bytes, 0, 3).unwrap(), 5);
        assert!(matches!(
            decode_chunk(bytes, 0).unwrap(),
            Cow::Borrowed("a😀")
        ));
    }

    #[test]
    fn lone_surrogates_become_replacement() {
        // High surrogate followed by 'a', then a lone low surrogate.
        let bytes = [0xed, 0xa0, 0xbd, b'a', 0xed, 0xb8, 0x80];
        assert_eq!(decode_chunk(&bytes, 0).unwrap(), "\u{FFFD}a\u{FFFD}");
    }
}
