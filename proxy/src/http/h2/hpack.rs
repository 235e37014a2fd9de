//! HPACK decoding (RFC 7541) for the HTTP/2 server: integers, string literals (Huffman-coded or
//! not), the static table and the connection's dynamic table.
//!
//! The Huffman code is canonical — a code is fully given by its length per symbol — so only the
//! 257 lengths are stored; the decoder compares a left-justified 32-bit window against the
//! largest code of each length, which finds a 5–8-bit symbol (nearly every character of a
//! header) in one to four comparisons, with no tables per string and no allocation per
//! literal beyond the output.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block does not decode: the connection's HPACK state is lost
/// (COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer does not fit in 32 bits.
    #[error("integer too large")]
    IntegerOverflow,
    /// An index beyond the static and dynamic tables (or 0).
    #[error("no table entry at index {0}")]
    BadIndex(usize),
    /// Huffman padding longer than 7 bits or not all ones, or the EOS symbol in a string.
    #[error("invalid Huffman coding")]
    Huffman,
    /// A dynamic table size update above what the server allows, or after a field.
    #[error("invalid dynamic table size update")]
    SizeUpdate,
}

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Huffman code length of each symbol, 0–255 then EOS (256) (RFC 7541 Appendix B).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// The canonical code, arranged for decoding.
struct Canonical {
    /// Per length: one past the largest code of that length, left-justified in 32 bits
    /// (`u64` because the last one is 2^32).
    limit: [u64; MAX_LEN + 1],
    /// Per length: the first code of that length.
    first: [u32; MAX_LEN + 1],
    /// Per length: where its symbols start in `symbols`.
    offset: [u16; MAX_LEN + 1],
    /// Symbols by code length, then value: the canonical order.
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static CODE: OnceLock<Canonical> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut count = [0u32; MAX_LEN + 1];
        for &len in &CODE_LENGTHS {
            count[usize::from(len)] += 1;
        }
        let mut code = Canonical {
            limit: [0; MAX_LEN + 1],
            first: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            symbols: [0; 257],
        };
        let (mut next, mut at) = (0u32, 0u16);
        for (len, &count) in count.iter().enumerate().skip(1) {
            code.first[len] = next;
            code.offset[len] = at;
            at += u16::try_from(count).unwrap_or(0);
            next += count;
            code.limit[len] = u64::from(next) << (32 - len);
            next <<= 1;
        }
        let mut order: Vec<u16> = (0..=EOS).collect();
        order.sort_by_key(|&symbol| (CODE_LENGTHS[usize::from(symbol)], symbol));
        code.symbols.copy_from_slice(&order);
        code
    })
}

/// Appends the Huffman-decoded `bytes` to `out`.
pub fn huffman_decode(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let code = canonical();
    let (mut acc, mut bits, mut at) = (0u64, 0usize, 0usize);
    loop {
        while bits <= 56
            && let Some(&byte) = bytes.get(at)
        {
            acc = (acc << 8) | u64::from(byte);
            bits += 8;
            at += 1;
        }
        if bits == 0 {
            return Ok(());
        }
        // The next 32 bits, padded with ones past the end (padding is a prefix of EOS).
        let window = if bits >= 32 {
            (acc >> (bits - 32)) & 0xffff_ffff
        } else {
            ((acc << (32 - bits)) | ((1u64 << (32 - bits)) - 1)) & 0xffff_ffff
        };
        let len = (MIN_LEN..=MAX_LEN)
            .find(|&len| window < code.limit[len])
            .unwrap_or(MAX_LEN);
        if len > bits {
            // No whole code is left: what remains must be at most 7 bits of ones.
            if bits > 7 || acc & ((1u64 << bits) - 1) != (1u64 << bits) - 1 {
                return Err(HpackError::Huffman);
            }
            return Ok(());
        }
        let value = u32::try_from(window >> (32 - len)).unwrap_or(u32::MAX);
        let index = usize::from(code.offset[len]) + (value - code.first[len]) as usize;
        let symbol = *code.symbols.get(index).ok_or(HpackError::Huffman)?;
        if symbol == EOS {
            return Err(HpackError::Huffman);
        }
        out.push(u8::try_from(symbol).unwrap_or(0));
        bits -= len;
        acc &= (1u64 << bits) - 1;
    }
}

/// An entry of the dynamic table: name and value in one allocation.
#[derive(Debug)]
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    /// The size RFC 7541 §4.1 counts: name, value and 32 bytes of overhead.
    fn size(&self) -> usize {
        self.bytes.len() + 32
    }
}

/// A connection's HPACK decoding state.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first: dynamic index 62 is `entries[0]`.
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// What SETTINGS_HEADER_TABLE_SIZE allows the peer.
    allowed: usize,
}

impl Decoder {
    /// A decoder whose table may grow to `allowed` bytes (4,096 unless the server's SETTINGS
    /// say otherwise).
    pub fn new(allowed: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: allowed,
            allowed,
        }
    }

    /// Decodes one complete header block, calling `field` with each name and value in order.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut fields_seen = false;
        let (mut name_buf, mut value_buf) = (Vec::new(), Vec::new());
        while let Some(&first) = block.get(at) {
            if first & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                let (name, value) = self.get(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                let size = integer(block, &mut at, 5)?;
                if fields_seen || size > self.allowed {
                    return Err(HpackError::SizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                let (prefix, indexing) = if first & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let index = integer(block, &mut at, prefix)?;
                name_buf.clear();
                value_buf.clear();
                let name: &[u8] = if index == 0 {
                    string(block, &mut at, &mut name_buf)?
                } else {
                    name_buf.extend_from_slice(self.get(index)?.0);
                    &name_buf
                };
                let value = string(block, &mut at, &mut value_buf)?;
                field(name, value);
                if indexing {
                    let mut bytes = Vec::with_capacity(name.len() + value.len());
                    bytes.extend_from_slice(name);
                    bytes.extend_from_slice(value);
                    self.insert(Entry {
                        bytes: bytes.into_boxed_slice(),
                        name_len: name.len(),
                    });
                }
            }
            fields_seen = true;
        }
        Ok(())
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        self.entries
            .get(index - STATIC_TABLE.len() - 1)
            .map(|entry| (entry.name(), entry.value()))
            .ok_or(HpackError::BadIndex(index))
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            // An entry larger than the table empties it and is not kept (§4.4).
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.entries.push_front(entry);
    }

    /// Drops the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some(oldest) = self.entries.pop_back() else {
                break;
            };
            self.size -= oldest.size();
        }
        if self.entries.is_empty() {
            // An emptied table gives its memory back.
            self.entries = VecDeque::new();
        }
    }
}

/// Reads an integer with an `prefix`-bit prefix (§5.1).
fn integer(block: &[u8], at: &mut usize, prefix: u32) -> Result<usize, HpackError> {
    let mask = (1u8 << prefix) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if value > u32::MAX as usize {
        return Err(HpackError::IntegerOverflow);
    }
    Ok(value)
}

/// Reads a string literal (§5.2): a slice of the block, or its Huffman decoding in `buf`.
fn string<'a>(
    block: &'a [u8],
    at: &mut usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let raw = block.get(*at..*at + len).ok_or(HpackError::Truncated)?;
    *at += len;
    if !huffman {
        return Ok(raw);
    }
    huffman_decode(raw, buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut Decoder,
        hex_block: &str,
    ) -> Result<Vec<(String, String)>, HpackError> {
        let block = hex::decode(hex_block).unwrap();
        let mut fields = Vec::new();
        decoder.decode(&block, |name, value| {
            fields.push((
                String::from_utf8(name.to_vec()).unwrap(),
                String::from_utf8(value.to_vec()).unwrap(),
            ));
        })?;
        Ok(fields)
    }

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// RFC 7541 C.4: three requests with Huffman coding sharing one dynamic table.
    #[test]
    fn the_rfc_request_examples_decode() {
        let mut decoder = Decoder::new(4096);
        let base = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        assert_eq!(
            decode_all(&mut decoder, "828684418cf1e3c2e5f23a6ba0ab90f4ff").unwrap(),
            pairs(&base)
        );
        let mut second = base.to_vec();
        second.push(("cache-control", "no-cache"));
        assert_eq!(
            decode_all(&mut decoder, "828684be5886a8eb10649cbf").unwrap(),
            pairs(&second)
        );
        assert_eq!(
            decode_all(
                &mut decoder,
                "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"
            )
            .unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(decoder.entries.len(), 3);
        assert_eq!(decoder.size, 164, "the RFC's table size after C.4.3");
    }

    /// A gRPC request head as Python's `hpack` encodes it, twice: the second time every field
    /// is an index into the dynamic table.
    #[test]
    fn a_grpc_head_from_another_encoder_decodes_and_indexes() {
        let mut decoder = Decoder::new(4096);
        let expected = pairs(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/causeway.bench.Echo/Echo"),
            (":authority", "127.0.0.1:50051"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            (
                "user-agent",
                "grpc-python/1.60 ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./ \u{e9}",
            ),
            ("grpc-timeout", "100m"),
        ]);
        let first = "838644926083b505f03f4bc65a893af80939d8c049cf418b089d5c0b8170dc6c006c3f5f8b1d75d0620d263d4c4d65644082497f864d833505b11f7abd9acac8b57e9339ea602bb8053ffbfc7febfebff2afff9f1f3fd7f717fbfffdffeffcb9fcfffcffbff3ffead07fefff9fffc3effd7d2ec29fffc7fffddf40899acac8b24d494f6a7f8308014f";
        assert_eq!(decode_all(&mut decoder, first).unwrap(), expected);
        assert_eq!(
            decode_all(&mut decoder, "8386c3c2c1c0bfbe").unwrap(),
            expected
        );
    }

    #[test]
    fn the_static_table_agrees_with_another_decoder() {
        for index in 1..=61u8 {
            let theirs = loona_hpack::Decoder::new().decode(&[0x80 | index]).unwrap();
            let mut ours = Vec::new();
            Decoder::new(4096)
                .decode(&[0x80 | index], |n, v| ours.push((n.to_vec(), v.to_vec())))
                .unwrap();
            assert_eq!(ours, theirs, "index {index}");
        }
    }

    /// Encodes with the canonical code built from [`CODE_LENGTHS`] (a test-only encoder).
    fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
        let code = canonical();
        let mut codes = [0u32; 257];
        for (rank, &symbol) in code.symbols.iter().enumerate() {
            let len = usize::from(CODE_LENGTHS[usize::from(symbol)]);
            codes[usize::from(symbol)] =
                code.first[len] + (rank - usize::from(code.offset[len])) as u32;
        }
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &byte in bytes {
            let len = u32::from(CODE_LENGTHS[usize::from(byte)]);
            acc = (acc << len) | u64::from(codes[usize::from(byte)]);
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
        }
        out
    }

    #[test]
    fn huffman_coding_round_trips_every_byte_and_matches_another_decoder() {
        let all: Vec<u8> = (0..=255).collect();
        let encoded = huffman_encode(&all);
        let mut ours = Vec::new();
        huffman_decode(&encoded, &mut ours).unwrap();
        assert_eq!(ours, all);
        // The same bytes as a Huffman literal, decoded by loona-hpack's (RFC) table.
        let mut block = vec![0x00, 0x01];
        block.extend_from_slice(b"x");
        let mut len = Vec::new();
        let n = encoded.len();
        len.push(0x80 | 0x7f);
        let mut rest = n - 127;
        while rest >= 128 {
            len.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        len.push(rest as u8);
        block.extend_from_slice(&len);
        block.extend_from_slice(&encoded);
        let theirs = loona_hpack::Decoder::new().decode(&block).unwrap();
        assert_eq!(theirs[0].1, all);
    }

    #[test]
    fn bad_huffman_and_bad_blocks_are_errors() {
        let mut out = Vec::new();
        // Eight bits of padding.
        assert_eq!(huffman_decode(&[0xff], &mut out), Err(HpackError::Huffman));
        // Padding of zeros: '0' is 00000, then 000 is not a prefix of EOS.
        assert_eq!(huffman_decode(&[0x00], &mut out), Err(HpackError::Huffman));
        // EOS itself (30 ones) in the string.
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decoder.decode(&[0x80], |_, _| {}),
            Err(HpackError::BadIndex(0))
        );
        assert_eq!(
            decoder.decode(&[0xbe], |_, _| {}),
            Err(HpackError::BadIndex(62))
        );
        assert_eq!(
            decoder.decode(&[0x40, 0x05, b'a'], |_, _| {}),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decoder.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], |_, _| {}),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            decoder.decode(&[0x3f, 0xe2, 0x1f], |_, _| {}),
            Err(HpackError::SizeUpdate),
            "above the allowed size"
        );
        assert_eq!(
            decoder.decode(&[0x82, 0x20], |_, _| {}),
            Err(HpackError::SizeUpdate),
            "after a field"
        );
    }

    #[test]
    fn the_table_evicts_and_a_size_update_shrinks_it() {
        let mut decoder = Decoder::new(100);
        // Two entries of 32 + 2 + 20 = 54 bytes: the second evicts the first.
        let entry = |name: u8| {
            let mut block = vec![0x40, 0x01, name, 20];
            block.extend_from_slice(&[b'v'; 20]);
            block
        };
        decoder.decode(&entry(b'a'), |_, _| {}).unwrap();
        decoder.decode(&entry(b'b'), |_, _| {}).unwrap();
        assert_eq!(decoder.entries.len(), 1);
        let mut names = Vec::new();
        decoder
            .decode(&[0xbe], |n, _| names.push(n.to_vec()))
            .unwrap();
        assert_eq!(names, [b"b".to_vec()]);
        decoder.decode(&[0x20], |_, _| {}).unwrap();
        assert_eq!((decoder.entries.len(), decoder.size), (0, 0));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_blocks_never_panic(block in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut decoder = Decoder::new(4096);
            let _ = decoder.decode(&block, |_, _| {});
            let _ = decoder.decode(&block, |_, _| {});
        }

        #[test]
        fn huffman_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut out = Vec::new();
            huffman_decode(&huffman_encode(&bytes), &mut out).unwrap();
            proptest::prop_assert_eq!(out, bytes);
        }
    }
}
