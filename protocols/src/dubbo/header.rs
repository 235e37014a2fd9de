//! The 16-byte Dubbo header (PROTOCOLS.md §1.1) and the numbers in it: flag bits, serialization
//! ids (§1.2) and response statuses (§1.3).

use std::fmt;

use super::error::FrameError;

/// The two magic bytes every frame starts with.
pub const MAGIC: [u8; 2] = [0xDA, 0xBB];

/// Length of the header.
pub const HEADER_LEN: usize = 16;

/// Java's default `payload` limit on a body: 8 MiB.
pub const DEFAULT_MAX_BODY_LEN: usize = 8 * 1024 * 1024;

/// Flag bit: the frame is a request (clear for responses).
pub const FLAG_REQUEST: u8 = 0x80;
/// Flag bit: the request expects a response (requests only).
pub const FLAG_TWO_WAY: u8 = 0x40;
/// Flag bit: heartbeat or other event (READONLY, WRITEABLE).
pub const FLAG_EVENT: u8 = 0x20;
/// Low bits of the flag byte holding the serialization id.
pub const SERIALIZATION_MASK: u8 = 0x1F;

/// A decoded Dubbo header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The raw flag byte (byte 2): direction, two-way, event and serialization bits.
    pub flags: u8,
    /// Byte 3: the response status (Java writes 0 in requests).
    pub status: Status,
    /// Bytes 4..11: the request id, echoed by the response.
    pub request_id: i64,
    /// Bytes 12..15: the number of body bytes after the header.
    pub body_len: u32,
}

// === impl Header ===

impl Header {
    /// Header of a request; `two_way` is clear for one-way calls (no response will come).
    pub fn request(request_id: i64, serialization: Serialization, two_way: bool) -> Self {
        let mut flags = FLAG_REQUEST | serialization.bits();
        if two_way {
            flags |= FLAG_TWO_WAY;
        }
        Self {
            flags,
            status: Status(0),
            request_id,
            body_len: 0,
        }
    }

    /// Header of a response.
    pub fn response(request_id: i64, serialization: Serialization, status: Status) -> Self {
        Self {
            flags: serialization.bits(),
            status,
            request_id,
            body_len: 0,
        }
    }

    /// Decodes the header at the start of `bytes` (which must hold at least 16 bytes).
    ///
    /// Fails on a wrong magic and on a negative body length; the body itself is not looked at.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        let [m0, m1, flags, status, id @ .., l0, l1, l2, l3] = *h;
        if [m0, m1] != MAGIC {
            return Err(FrameError::BadMagic { found: [m0, m1] });
        }
        let raw_len = i32::from_be_bytes([l0, l1, l2, l3]);
        let body_len = u32::try_from(raw_len)
            .map_err(|_| FrameError::NegativeBodyLength { value: raw_len })?;
        Ok(Self {
            flags,
            status: Status(status),
            request_id: i64::from_be_bytes(id),
            body_len,
        })
    }

    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [m0, m1] = MAGIC;
        let [i0, i1, i2, i3, i4, i5, i6, i7] = self.request_id.to_be_bytes();
        let [l0, l1, l2, l3] = self.body_len.to_be_bytes();
        [
            m0,
            m1,
            self.flags,
            self.status.0,
            i0,
            i1,
            i2,
            i3,
            i4,
            i5,
            i6,
            i7,
            l0,
            l1,
            l2,
            l3,
        ]
    }

    /// `true` for requests (flag bit 7).
    pub fn is_request(&self) -> bool {
        self.flags & FLAG_REQUEST != 0
    }

    /// `true` for responses.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// `true` for requests that expect a response.
    pub fn is_two_way(&self) -> bool {
        self.is_request() && self.flags & FLAG_TWO_WAY != 0
    }

    /// `true` for events (heartbeats, READONLY, WRITEABLE).
    pub fn is_event(&self) -> bool {
        self.flags & FLAG_EVENT != 0
    }

    /// The serialization of the body (the response uses the request's).
    pub fn serialization(&self) -> Serialization {
        Serialization(self.flags & SERIALIZATION_MASK)
    }

    /// Header plus body length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

/// A serialization id (the low 5 bits of the flag byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serialization(pub u8);

impl Serialization {
    /// Hessian 2 (the default, fully supported here).
    pub const HESSIAN2: Self = Self(2);
    /// Java native serialization.
    pub const JAVA: Self = Self(3);
    /// Dubbo's compacted Java serialization.
    pub const COMPACTED_JAVA: Self = Self(4);
    /// fastjson.
    pub const FASTJSON: Self = Self(6);
    /// Dubbo's native Java serialization.
    pub const NATIVE_JAVA: Self = Self(7);
    /// Kryo.
    pub const KRYO: Self = Self(8);
    /// FST.
    pub const FST: Self = Self(9);
    /// Caucho's native Hessian.
    pub const NATIVE_HESSIAN: Self = Self(10);
    /// Avro.
    pub const AVRO: Self = Self(11);
    /// protostuff.
    pub const PROTOSTUFF: Self = Self(12);
    /// Gson.
    pub const GSON: Self = Self(16);
    /// Jackson.
    pub const JACKSON: Self = Self(18);
    /// protobuf as JSON.
    pub const PROTOBUF_JSON: Self = Self(21);
    /// protobuf.
    pub const PROTOBUF: Self = Self(22);
    /// fastjson2 (the default between Dubbo 3.2 peers, PROTOCOLS.md §1.10).
    pub const FASTJSON2: Self = Self(23);
    /// Kryo 2.
    pub const KRYO2: Self = Self(25);
    /// MessagePack.
    pub const MSGPACK: Self = Self(27);
    /// Fury.
    pub const FURY: Self = Self(28);
    /// A custom MessagePack serialization.
    pub const CUSTOM_MESSAGE_PACK: Self = Self(31);

    /// Dubbo's name for the id, if it is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            2 => "hessian2",
            3 => "java",
            4 => "compactedjava",
            6 => "fastjson",
            7 => "nativejava",
            8 => "kryo",
            9 => "fst",
            10 => "native-hessian",
            11 => "avro",
            12 => "protostuff",
            16 => "gson",
            18 => "jackson",
            21 => "protobuf-json",
            22 => "protobuf",
            23 => "fastjson2",
            25 => "kryo2",
            27 => "msgpack",
            28 => "fury",
            31 => "custom-message-pack",
            _ => return None,
        })
    }

    /// How this serialization writes `null`, which is the whole body of a heartbeat (Java
    /// compares event bodies with these bytes, `CodecSupport.isHeartBeat`). Known for Hessian 2
    /// (`4E`) and fastjson2 (`00 00 00 01 AF`, a length-prefixed JSONB null derived from the JSONB
    /// constants, PROTOCOLS.md §1.10).
    pub fn null_bytes(self) -> Option<&'static [u8]> {
        match self {
            Self::HESSIAN2 => Some(&[0x4E]),
            Self::FASTJSON2 => Some(&[0x00, 0x00, 0x00, 0x01, 0xAF]),
            _ => None,
        }
    }

    /// The id as it sits in the flag byte (masked to 5 bits).
    pub fn bits(self) -> u8 {
        self.0 & SERIALIZATION_MASK
    }
}

impl fmt::Display for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown serialization ({})", self.0),
        }
    }
}

/// The response status byte (`Response.java`, PROTOCOLS.md §1.3). Unknown values are kept and
/// passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub u8);

impl Status {
    /// 20: the body is a result (value, null or business exception).
    pub const OK: Self = Self(20);
    /// 25: the response could not be serialized (e.g. over the payload limit).
    pub const SERIALIZATION_ERROR: Self = Self(25);
    /// 30: the client timed out.
    pub const CLIENT_TIMEOUT: Self = Self(30);
    /// 31: the server timed out (the Java consumer raises a `TimeoutException`).
    pub const SERVER_TIMEOUT: Self = Self(31);
    /// 35: the channel is inactive.
    pub const CHANNEL_INACTIVE: Self = Self(35);
    /// 40: the request could not be decoded.
    pub const BAD_REQUEST: Self = Self(40);
    /// 50: the response could not be encoded.
    pub const BAD_RESPONSE: Self = Self(50);
    /// 60: no such service.
    pub const SERVICE_NOT_FOUND: Self = Self(60);
    /// 70: provider-side failure outside the business method.
    pub const SERVICE_ERROR: Self = Self(70);
    /// 80: server error.
    pub const SERVER_ERROR: Self = Self(80);
    /// 90: client error.
    pub const CLIENT_ERROR: Self = Self(90);
    /// 100: the server's thread pool is exhausted (load shedding).
    pub const SERVER_THREADPOOL_EXHAUSTED: Self = Self(100);

    /// `true` for 20.
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }

    /// The Java constant's name, if the status is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            20 => "OK",
            25 => "SERIALIZATION_ERROR",
            30 => "CLIENT_TIMEOUT",
            31 => "SERVER_TIMEOUT",
            35 => "CHANNEL_INACTIVE",
            40 => "BAD_REQUEST",
            50 => "BAD_RESPONSE",
            60 => "SERVICE_NOT_FOUND",
            70 => "SERVICE_ERROR",
            80 => "SERVER_ERROR",
            90 => "CLIENT_ERROR",
            100 => "SERVER_THREADPOOL_EXHAUSTED_ERROR",
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} {name}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
