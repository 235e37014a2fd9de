//! Reading a Hessian 2 response body (PROTOCOLS.md §1.3, §1.7): the error message of a non-OK
//! status, or the result flag and then value, exception and attachments on demand.

use std::borrow::Cow;

use crate::hessian::{Decoder, Value};

use super::error::DubboError;
use super::header::Status;
use super::request::{Attachments, read_attachments};

/// The result flag that starts an OK response body (`DubboCodec` `RESPONSE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultFlag {
    /// 0: a throwable follows.
    Exception,
    /// 1: the return value follows.
    Value,
    /// 2: nothing follows (void or `null`).
    NullValue,
    /// 3: a throwable, then attachments.
    ExceptionWithAttachments,
    /// 4: the return value, then attachments.
    ValueWithAttachments,
    /// 5: attachments only.
    NullValueWithAttachments,
}

/// What an OK response carries, whatever the attachment variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultKind {
    /// A return value.
    Value,
    /// No value (void or `null`).
    Null,
    /// A business exception thrown by the service method.
    Exception,
}

/// A response body read in place.
#[derive(Debug, Clone)]
pub struct ResponseView<'a> {
    status: Status,
    body: &'a [u8],
    content: Content<'a>,
}

#[derive(Debug, Clone)]
enum Content<'a> {
    /// Non-OK status: the body is one string (or `null`).
    Error(Option<Cow<'a, str>>),
    /// OK: a result flag, then what it announces, starting at `offset`.
    Result { flag: ResultFlag, offset: usize },
}

// === impl ResultFlag ===

impl ResultFlag {
    /// The flag for a wire value.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Exception,
            1 => Self::Value,
            2 => Self::NullValue,
            3 => Self::ExceptionWithAttachments,
            4 => Self::ValueWithAttachments,
            5 => Self::NullValueWithAttachments,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            Self::Exception => 0,
            Self::Value => 1,
            Self::NullValue => 2,
            Self::ExceptionWithAttachments => 3,
            Self::ValueWithAttachments => 4,
            Self::NullValueWithAttachments => 5,
        }
    }

    /// The flag for a kind of result, with or without attachments.
    pub fn new(kind: ResultKind, with_attachments: bool) -> Self {
        match (kind, with_attachments) {
            (ResultKind::Exception, false) => Self::Exception,
            (ResultKind::Value, false) => Self::Value,
            (ResultKind::Null, false) => Self::NullValue,
            (ResultKind::Exception, true) => Self::ExceptionWithAttachments,
            (ResultKind::Value, true) => Self::ValueWithAttachments,
            (ResultKind::Null, true) => Self::NullValueWithAttachments,
        }
    }

    /// `true` for the flags followed by an attachments map (3, 4, 5).
    pub fn has_attachments(self) -> bool {
        self.code() >= 3
    }

    /// What the response carries.
    pub fn kind(self) -> ResultKind {
        match self {
            Self::Exception | Self::ExceptionWithAttachments => ResultKind::Exception,
            Self::Value | Self::ValueWithAttachments => ResultKind::Value,
            Self::NullValue | Self::NullValueWithAttachments => ResultKind::Null,
        }
    }
}

// === impl ResponseView ===

impl<'a> ResponseView<'a> {
    /// Reads the start of a response body: the message of an error status, or the result flag.
    pub fn parse(status: Status, body: &'a [u8]) -> Result<Self, DubboError> {
        let mut d = Decoder::new(body);
        let content = if status.is_ok() {
            let code = d.read_i32().map_err(DubboError::body("result flag"))?;
            let flag =
                ResultFlag::from_code(code).ok_or(DubboError::UnknownResultFlag { flag: code })?;
            Content::Result {
                flag,
                offset: d.position(),
            }
        } else {
            // Java reads a non-OK body with `readUTF()`: one string.
            Content::Error(d.read_str().map_err(DubboError::body("error message"))?)
        };
        Ok(Self {
            status,
            body,
            content,
        })
    }

    /// The status byte.
    pub fn status(&self) -> Status {
        self.status
    }

    /// For a non-OK status, the error message.
    pub fn error_message(&self) -> Option<&str> {
        match &self.content {
            Content::Error(message) => message.as_deref(),
            Content::Result { .. } => None,
        }
    }

    /// For an OK status, the result flag.
    pub fn result_flag(&self) -> Option<ResultFlag> {
        match self.content {
            Content::Result { flag, .. } => Some(flag),
            Content::Error(_) => None,
        }
    }

    /// The return value (flags 1 and 4), decoded; `None` for other responses.
    pub fn value(&self) -> Result<Option<Value>, DubboError> {
        self.payload(ResultKind::Value)
    }

    /// The business exception (flags 0 and 3), decoded; `None` for other responses.
    pub fn exception(&self) -> Result<Option<Value>, DubboError> {
        self.payload(ResultKind::Exception)
    }

    fn payload(&self, kind: ResultKind) -> Result<Option<Value>, DubboError> {
        match self.content {
            Content::Result { flag, offset } if flag.kind() == kind => {
                let mut d = Decoder::starting_at(self.body, offset);
                d.read_value()
                    .map(Some)
                    .map_err(DubboError::body("result value"))
            }
            _ => Ok(None),
        }
    }

    /// The response attachments (flags 3, 4 and 5; empty otherwise), reached by skipping the
    /// value or exception without building it.
    pub fn attachments(&self) -> Result<Attachments<'a>, DubboError> {
        match self.content {
            Content::Result { flag, offset } if flag.has_attachments() => {
                let mut d = Decoder::starting_at(self.body, offset);
                if flag.kind() != ResultKind::Null {
                    d.skip_value().map_err(DubboError::body("result value"))?;
                }
                read_attachments(&mut d)
            }
            _ => Ok(Attachments::default()),
        }
    }
}
