//! One caller's HTTP/2 connection, driven by a single task: frames are read and answered,
//! requests handed to the service, responses and their bodies written back under both flow
//! control windows.
//!
//! Memory is the reason this exists. Reads land in a buffer on the polling thread's stack and
//! only the tail of a frame cut by a read is kept per connection; the output buffer lives only
//! while there is something to write; the HPACK encoder is stateless. An open idle connection
//! holds its stream table, HPACK decoder table and this struct — a few hundred bytes — rather
//! than the ~28 KiB of read, write and decoding buffers a general-purpose HTTP/2 server keeps.
//! Requests run as futures of this task (no task per stream), which also saves a wake-up and a
//! cross-task hand-off per request.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::FuturesUnordered;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Error, Head, Reason, flag, kind};
use super::headers::{self, HeadError};
use super::hpack::Decoder;
use super::recv_body::{RecvBody, Shared};
use super::{ServeError, Settings, Trouble};

/// Bytes read at a time (one maximum-size frame and its header).
const READ_CHUNK: usize = frame::DEFAULT_MAX_FRAME_SIZE as usize + frame::HEAD_LEN;
/// Output queued beyond this stops reading and body polling until the caller takes it.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// Room the output buffer starts with when there is something to write (a typical response:
/// HEADERS, a DATA frame and trailers).
const OUT_INITIAL: usize = 2 * 1024;
/// A header block (HEADERS and CONTINUATIONs) larger than this ends the connection.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The HPACK dynamic table a caller may use (the protocol's default; the server does not
/// announce another).
const HEADER_TABLE_SIZE: usize = 4096;
/// Streams reset by the server whose late frames are ignored.
const RESETS_REMEMBERED: usize = 32;
/// Passes of the drive loop before the task yields to others.
const PASSES_BEFORE_YIELD: usize = 32;

/// One stream the caller opened.
struct Stream<B> {
    id: u32,
    /// Where its request body goes (`None` when the HEADERS ended the stream).
    recv: Option<Arc<Shared>>,
    /// What the caller may still send on it.
    recv_window: i64,
    /// Bytes received and not yet credited back to the connection window.
    uncredited: u32,
    /// Bytes the request body consumed, not yet credited back to the stream window.
    stream_credit: u32,
    /// The caller sent END_STREAM.
    remote_ended: bool,
    /// Cancels the request's future while it runs.
    abort: Option<AbortHandle>,
    /// The response body being sent.
    body: Option<B>,
    /// Response data waiting for window.
    pending: Option<Bytes>,
    /// END_STREAM goes with the pending data.
    pending_ends: bool,
    /// The request's `content-length`, which its DATA must add up to (RFC 9113 §8.1.1).
    content_length: Option<u64>,
    /// DATA bytes received.
    received: u64,
    /// What the stream may still send.
    send_window: i64,
}

impl<B> Stream<B> {
    fn responding(&self) -> bool {
        self.body.is_some() || self.pending.is_some()
    }
}

/// A header block being continued.
struct Continuation {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// The connection's state.
pub(super) struct Connection<I, Svc, R, B> {
    io: I,
    service: Svc,
    settings: Settings,
    trouble: Trouble,
    responding: FuturesUnordered<Abortable<R>>,
    streams: Vec<Stream<B>>,
    decoder: Decoder,
    /// The start of a frame a read cut off.
    carry: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    preface_seen: bool,
    settings_seen: bool,
    continuation: Option<Continuation>,
    /// The highest stream id the caller opened.
    last_stream: u32,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    /// Received bytes released by their consumers, not yet sent as a WINDOW_UPDATE.
    conn_unreleased: u32,
    /// The caller said it sends no more streams (the connection stays until it closes).
    goaway_received: bool,
    /// Streams the server reset lately: frames already in flight on them are ignored, while
    /// DATA on any other closed stream is a connection error (RFC 9113 §5.1).
    reset_lately: VecDeque<u32>,
    /// The connection failed; it ends once the GOAWAY is written.
    closing: Option<Error>,
}

impl<I, Svc, R, B> Connection<I, Svc, R, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    Svc: FnMut(u32, Request<RecvBody>) -> R,
    R: Future<Output = (u32, Response<B>)>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub(super) fn new(io: I, service: Svc, settings: Settings, trouble: Trouble) -> Self {
        let mut connection = Self {
            io,
            service,
            settings,
            trouble,
            responding: FuturesUnordered::new(),
            streams: Vec::new(),
            decoder: Decoder::new(HEADER_TABLE_SIZE),
            carry: Vec::new(),
            out: Vec::new(),
            written: 0,
            preface_seen: false,
            settings_seen: false,
            continuation: None,
            last_stream: 0,
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(settings.connection_window),
            conn_unreleased: 0,
            goaway_received: false,
            reset_lately: VecDeque::new(),
            closing: None,
        };
        let out = connection.out_buffer();
        frame::put_settings(
            out,
            &[
                (
                    frame::setting::MAX_CONCURRENT_STREAMS,
                    settings.max_concurrent_streams,
                ),
                (frame::setting::INITIAL_WINDOW_SIZE, settings.stream_window),
                (
                    frame::setting::MAX_HEADER_LIST_SIZE,
                    settings.max_header_list_size,
                ),
            ],
        );
        if let Some(raise) = settings
            .connection_window
            .checked_sub(frame::DEFAULT_WINDOW)
            && raise > 0
        {
            frame::put_window_update(out, 0, raise);
        }
        connection
    }

    /// The output buffer, given its initial room when it had been released.
    fn out_buffer(&mut self) -> &mut Vec<u8> {
        if self.out.capacity() == 0 {
            self.out.reserve(OUT_INITIAL);
        }
        &mut self.out
    }

    fn backlog(&self) -> usize {
        self.out.len() - self.written
    }

    /// Drives the connection until it ends.
    pub(super) fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServeError>> {
        for _ in 0..PASSES_BEFORE_YIELD {
            let mut progress = false;
            if self.closing.is_none() && self.backlog() < OUT_HIGH_WATER {
                match self.poll_read(cx) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {}
                }
            }
            while let Poll::Ready(Some(done)) = self.responding.poll_next_unpin(cx) {
                progress = true;
                self.respond(done);
            }
            self.credit_releases();
            if self.backlog() < OUT_HIGH_WATER && self.pump_bodies(cx) {
                progress = true;
            }
            match self.poll_write(cx) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(ServeError::Io(error))),
                Poll::Pending => {}
            }
            if self.backlog() == 0
                && let Some(error) = self.closing.take()
            {
                return Poll::Ready(Err(ServeError::Protocol(error)));
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Busy: let the runtime's other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads once and handles every complete frame; `Ok(0)` when the caller closed.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ServeError>> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(ServeError::Io)?;
        let read = buf.filled();
        let n = read.len();
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.carry.is_empty() {
            let used = self.handle_bytes(read, cx);
            if let Some(rest) = read.get(used..)
                && !rest.is_empty()
            {
                self.carry.extend_from_slice(rest);
            }
        } else {
            let mut bytes = std::mem::take(&mut self.carry);
            bytes.extend_from_slice(read);
            let used = self.handle_bytes(&bytes, cx);
            bytes.drain(..used.min(bytes.len()));
            if !bytes.is_empty() {
                self.carry = bytes;
            }
        }
        Poll::Ready(Ok(n))
    }

    /// Handles the complete frames at the start of `bytes`; returns how many bytes they took.
    /// A connection error is answered with GOAWAY and stops reading.
    fn handle_bytes(&mut self, bytes: &[u8], cx: &Context<'_>) -> usize {
        let mut at = 0;
        if !self.preface_seen {
            let seen = bytes.len().min(frame::PREFACE.len());
            if bytes.get(..seen) != frame::PREFACE.get(..seen) {
                self.fail(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "not the HTTP/2 connection preface",
                ));
                return bytes.len();
            }
            if seen < frame::PREFACE.len() {
                return 0;
            }
            self.preface_seen = true;
            at = frame::PREFACE.len();
        }
        while self.closing.is_none() {
            let Some(head) = bytes
                .get(at..at + frame::HEAD_LEN)
                .and_then(|head| <&[u8; frame::HEAD_LEN]>::try_from(head).ok())
            else {
                break;
            };
            let head = Head::parse(head);
            if head.len > frame::DEFAULT_MAX_FRAME_SIZE {
                self.fail(Error::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
                return bytes.len();
            }
            let start = at + frame::HEAD_LEN;
            let Some(payload) = bytes.get(start..start + head.len as usize) else {
                break;
            };
            at = start + payload.len();
            match self.handle_frame(head, payload, cx) {
                Ok(()) => {}
                Err(error @ Error::Stream { .. }) => self.reset_stream(error),
                Err(error) => self.fail(error),
            }
        }
        if self.closing.is_some() {
            return bytes.len();
        }
        at
    }

    /// Answers a connection error with GOAWAY; the connection ends once it is written.
    fn fail(&mut self, error: Error) {
        (self.trouble)(&error);
        if let Error::Connection { reason, why } = &error {
            let last = self.last_stream;
            frame::put_goaway(self.out_buffer(), last, *reason, why);
        }
        tracing::debug!(%error, "closing an HTTP/2 caller connection");
        self.closing = Some(error);
    }

    /// Answers a stream error with RST_STREAM and forgets the stream.
    fn reset_stream(&mut self, error: Error) {
        (self.trouble)(&error);
        if let Error::Stream { stream, reason, .. } = error {
            self.send_reset(stream, reason);
            self.remove_stream(stream, reason);
        }
    }

    /// Writes a RST_STREAM and remembers the stream, whose frames may still be in flight.
    fn send_reset(&mut self, id: u32, reason: Reason) {
        frame::put_rst_stream(self.out_buffer(), id, reason);
        if self.reset_lately.len() == RESETS_REMEMBERED {
            self.reset_lately.pop_front();
        }
        self.reset_lately.push_back(id);
    }

    fn position(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|stream| stream.id == id)
    }

    /// Drops a stream: its request future is cancelled, its bodies ended with `reason`.
    fn remove_stream(&mut self, id: u32, reason: Reason) {
        let Some(index) = self.position(id) else {
            return;
        };
        let stream = self.streams.swap_remove(index);
        if let Some(abort) = stream.abort {
            abort.abort();
        }
        if let Some(shared) = &stream.recv {
            if !stream.remote_ended {
                shared.reset(reason);
            }
            // Whatever the caller sent on it no longer counts against the connection.
            shared.take_released();
        }
        self.credit_connection(stream.uncredited);
        if self.streams.is_empty() && self.streams.capacity() > 16 {
            self.streams = Vec::new();
        }
    }

    fn handle_frame(&mut self, head: Head, payload: &[u8], cx: &Context<'_>) -> Result<(), Error> {
        if let Some(continuation) = &self.continuation
            && (head.kind != kind::CONTINUATION || head.stream != continuation.stream)
        {
            return Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "a header block was interrupted",
            ));
        }
        if !self.settings_seen {
            if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "the first frame is not SETTINGS",
                ));
            }
            self.settings_seen = true;
        }
        match head.kind {
            kind::DATA => self.on_data(head, payload, cx),
            kind::HEADERS => {
                let fragment = frame::headers(&head, payload)?;
                let end_stream = head.has(flag::END_STREAM);
                if head.has(flag::END_HEADERS) {
                    self.on_header_block(head.stream, end_stream, fragment)
                } else {
                    self.continuation = Some(Continuation {
                        stream: head.stream,
                        end_stream,
                        block: fragment.to_vec(),
                    });
                    Ok(())
                }
            }
            kind::CONTINUATION => {
                let Some(mut continuation) = self.continuation.take() else {
                    return Err(Error::connection(
                        Reason::PROTOCOL_ERROR,
                        "CONTINUATION without HEADERS",
                    ));
                };
                if continuation.block.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(Error::connection(
                        Reason::ENHANCE_YOUR_CALM,
                        "header block too large",
                    ));
                }
                continuation.block.extend_from_slice(payload);
                if head.has(flag::END_HEADERS) {
                    self.on_header_block(
                        continuation.stream,
                        continuation.end_stream,
                        &continuation.block,
                    )
                } else {
                    self.continuation = Some(continuation);
                    Ok(())
                }
            }
            kind::PRIORITY => frame::priority(&head, payload),
            kind::RST_STREAM => {
                let reason = frame::rst_stream(&head, payload)?;
                if head.stream > self.last_stream {
                    return Err(Error::connection(
                        Reason::PROTOCOL_ERROR,
                        "RST_STREAM on an idle stream",
                    ));
                }
                self.remove_stream(head.stream, reason);
                Ok(())
            }
            kind::SETTINGS => self.on_settings(&head, payload),
            kind::PUSH_PROMISE => Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "a client sent PUSH_PROMISE",
            )),
            kind::PING => {
                let data = frame::ping(&head, payload)?;
                if !head.has(flag::ACK) {
                    frame::put_ping_ack(self.out_buffer(), data);
                }
                Ok(())
            }
            kind::GOAWAY => {
                let (_, reason) = frame::goaway(&head, payload)?;
                tracing::debug!(%reason, "an HTTP/2 caller is going away");
                self.goaway_received = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(&head, payload),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn on_data(&mut self, head: Head, payload: &[u8], cx: &Context<'_>) -> Result<(), Error> {
        let data = frame::data(&head, payload)?;
        let len = head.len;
        self.recv_window -= i64::from(len);
        if self.recv_window < 0 {
            return Err(Error::connection(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        let Some(index) = self.position(head.stream) else {
            if head.stream > self.last_stream {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "DATA on an idle stream",
                ));
            }
            // Its data only counts against the window.
            self.credit_connection(len);
            if self.reset_lately.contains(&head.stream) {
                // Sent before the caller saw the server's RST_STREAM.
                return Ok(());
            }
            return Err(Error::connection(
                Reason::STREAM_CLOSED,
                "DATA on a closed stream",
            ));
        };
        let stream = &mut self.streams[index];
        if stream.remote_ended {
            self.credit_connection(len);
            return Err(Error::stream(
                head.stream,
                Reason::STREAM_CLOSED,
                "DATA after END_STREAM",
            ));
        }
        stream.recv_window -= i64::from(len);
        if stream.recv_window < 0 {
            self.credit_connection(len);
            return Err(Error::stream(
                head.stream,
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the stream window",
            ));
        }
        let padding = len - u32::try_from(data.len()).unwrap_or(len);
        stream.uncredited += len - padding;
        stream.received += data.len() as u64;
        let end = head.has(flag::END_STREAM);
        if let Some(length) = stream.content_length
            && (stream.received > length || (end && stream.received != length))
        {
            self.credit_connection(len);
            return Err(Error::stream(
                head.stream,
                Reason::PROTOCOL_ERROR,
                "DATA does not add up to content-length",
            ));
        }
        if let Some(shared) = &stream.recv
            && !data.is_empty()
        {
            shared.push_data(Bytes::copy_from_slice(data), cx.waker());
        }
        if end {
            stream.remote_ended = true;
            if let Some(shared) = &stream.recv {
                shared.end(None);
            }
        }
        // Padding is never consumed: credit it back at once.
        self.credit_connection(padding);
        Ok(())
    }

    fn on_header_block(&mut self, id: u32, end_stream: bool, block: &[u8]) -> Result<(), Error> {
        if let Some(index) = self.position(id) {
            return self.on_trailers(index, end_stream, block);
        }
        // The decoder's table must see every block, even one the server refuses.
        let decoded = headers::decode_request(
            &mut self.decoder,
            block,
            self.settings.max_header_list_size as usize,
        );
        if id.is_multiple_of(2) {
            return Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "a client opened an even-numbered stream",
            ));
        }
        if id <= self.last_stream {
            return Err(Error::connection(
                Reason::STREAM_CLOSED,
                "HEADERS on a closed stream",
            ));
        }
        self.last_stream = id;
        let mut request = match decoded {
            Ok(request) => request,
            Err(HeadError::Compression) => {
                return Err(Error::connection(
                    Reason::COMPRESSION_ERROR,
                    "undecodable header block",
                ));
            }
            Err(HeadError::TooLarge) => {
                (self.trouble)(&Error::stream(
                    id,
                    Reason::NO_ERROR,
                    "request header list too large",
                ));
                self.answer_locally(id, end_stream, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                return Ok(());
            }
            Err(HeadError::Malformed(why)) => {
                return Err(Error::stream(id, Reason::PROTOCOL_ERROR, why));
            }
        };
        if self.goaway_received {
            return Err(Error::stream(
                id,
                Reason::REFUSED_STREAM,
                "the caller said it was going away",
            ));
        }
        if self.streams.len() >= self.settings.max_concurrent_streams as usize {
            return Err(Error::stream(
                id,
                Reason::REFUSED_STREAM,
                "too many concurrent streams",
            ));
        }
        let content_length = match headers::content_length(request.headers()) {
            Ok(length) => length,
            Err(why) => return Err(Error::stream(id, Reason::PROTOCOL_ERROR, why)),
        };
        if end_stream && content_length.is_some_and(|length| length > 0) {
            return Err(Error::stream(
                id,
                Reason::PROTOCOL_ERROR,
                "content-length without DATA",
            ));
        }
        let recv = (!end_stream).then(|| Arc::new(Shared::default()));
        let body = recv
            .as_ref()
            .map_or_else(RecvBody::empty, |shared| RecvBody::new(shared.clone()));
        let (abort, registration) = AbortHandle::new_pair();
        let (parts, ()) = std::mem::replace(&mut request, Request::new(())).into_parts();
        let future = (self.service)(id, Request::from_parts(parts, body));
        self.responding.push(Abortable::new(future, registration));
        self.streams.push(Stream {
            id,
            recv,
            recv_window: i64::from(self.settings.stream_window),
            uncredited: 0,
            stream_credit: 0,
            remote_ended: end_stream,
            abort: Some(abort),
            body: None,
            pending: None,
            pending_ends: false,
            content_length,
            received: 0,
            send_window: self.peer_initial_window,
        });
        Ok(())
    }

    fn on_trailers(&mut self, index: usize, end_stream: bool, block: &[u8]) -> Result<(), Error> {
        let id = self.streams[index].id;
        let trailers = match headers::decode_trailers(&mut self.decoder, block) {
            Ok(trailers) => Some(trailers),
            Err(HeadError::Compression) => {
                return Err(Error::connection(
                    Reason::COMPRESSION_ERROR,
                    "undecodable header block",
                ));
            }
            Err(_) => None,
        };
        let stream = &mut self.streams[index];
        if stream.remote_ended {
            return Err(Error::stream(
                id,
                Reason::STREAM_CLOSED,
                "HEADERS after END_STREAM",
            ));
        }
        let (true, Some(trailers)) = (end_stream, trailers) else {
            return Err(Error::stream(
                id,
                Reason::PROTOCOL_ERROR,
                "trailers without END_STREAM or with pseudo-headers",
            ));
        };
        stream.remote_ended = true;
        if let Some(shared) = &stream.recv {
            shared.end(Some(trailers));
        }
        Ok(())
    }

    fn on_settings(&mut self, head: &Head, payload: &[u8]) -> Result<(), Error> {
        let Some(settings) = frame::settings(head, payload)? else {
            return Ok(());
        };
        if let Some(window) = settings.initial_window_size {
            let delta = i64::from(window) - self.peer_initial_window;
            self.peer_initial_window = i64::from(window);
            for stream in &mut self.streams {
                stream.send_window += delta;
                if stream.send_window > frame::MAX_WINDOW {
                    return Err(Error::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE overflows a stream window",
                    ));
                }
            }
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame = size as usize;
        }
        frame::put_settings_ack(self.out_buffer());
        Ok(())
    }

    fn on_window_update(&mut self, head: &Head, payload: &[u8]) -> Result<(), Error> {
        let increment = i64::from(frame::window_update(head, payload)?);
        if head.stream == 0 {
            self.send_window += increment;
            if self.send_window > frame::MAX_WINDOW {
                return Err(Error::connection(
                    Reason::FLOW_CONTROL_ERROR,
                    "connection window above 2^31-1",
                ));
            }
            return Ok(());
        }
        match self.position(head.stream) {
            Some(index) => {
                let stream = &mut self.streams[index];
                stream.send_window += increment;
                if stream.send_window > frame::MAX_WINDOW {
                    return Err(Error::stream(
                        head.stream,
                        Reason::FLOW_CONTROL_ERROR,
                        "stream window above 2^31-1",
                    ));
                }
                Ok(())
            }
            None if head.stream > self.last_stream => Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            )),
            None => Ok(()),
        }
    }

    /// Answers a request the server refuses before it reaches the service.
    fn answer_locally(&mut self, id: u32, end_stream: bool, status: StatusCode) {
        let mut block = Vec::new();
        headers::encode_response(&mut block, status, &HeaderMap::new());
        let max_frame = self.peer_max_frame;
        frame::put_header_block(self.out_buffer(), id, &block, true, max_frame);
        if !end_stream {
            // The caller need not send the rest of a request already answered.
            self.send_reset(id, Reason::NO_ERROR);
        }
    }

    /// A request's future finished: its response head goes out, its body is pumped next.
    fn respond(&mut self, done: Result<(u32, Response<B>), Aborted>) {
        // An aborted future belonged to a stream already removed.
        let Ok((id, response)) = done else {
            return;
        };
        let Some(index) = self.position(id) else {
            return;
        };
        let (parts, body) = response.into_parts();
        let max_frame = self.peer_max_frame;
        let ends = body.is_end_stream();
        let mut block = Vec::with_capacity(64 + parts.headers.len() * 32);
        headers::encode_response(&mut block, parts.status, &parts.headers);
        let stream = &mut self.streams[index];
        stream.abort = None;
        if !ends {
            stream.body = Some(body);
        }
        frame::put_header_block(self.out_buffer(), id, &block, ends, max_frame);
        if ends {
            self.local_end(id);
        }
    }

    /// Sends what response bodies have, as far as the windows allow; whether anything moved.
    fn pump_bodies(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut index = 0;
        while index < self.streams.len() {
            if self.backlog() >= OUT_HIGH_WATER {
                break;
            }
            let before = self.streams.len();
            if self.streams[index].responding() && self.pump(index, cx) {
                progress = true;
            }
            // A finished stream was swapped out: the same index holds the next one.
            if self.streams.len() == before {
                index += 1;
            }
        }
        progress
    }

    /// Pumps one stream's body; whether anything moved.
    fn pump(&mut self, index: usize, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            if self.streams[index].pending.is_some() {
                match self.send_pending(index) {
                    Sent::Blocked => return progress,
                    Sent::Ended => return true,
                    Sent::Drained => progress = true,
                }
            }
            if self.backlog() >= OUT_HIGH_WATER {
                return progress;
            }
            let stream = &mut self.streams[index];
            let Some(body) = stream.body.as_mut() else {
                return progress;
            };
            let id = stream.id;
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return progress,
                Poll::Ready(Some(Ok(frame))) => {
                    progress = true;
                    match frame.into_data() {
                        Ok(data) => {
                            let ends = body.is_end_stream();
                            if ends {
                                stream.body = None;
                            }
                            stream.pending = Some(data);
                            stream.pending_ends = ends;
                        }
                        Err(frame) => {
                            stream.body = None;
                            let trailers = frame.into_trailers().unwrap_or_default();
                            let mut block = Vec::with_capacity(64);
                            headers::encode_trailers(&mut block, &trailers);
                            let max_frame = self.peer_max_frame;
                            frame::put_header_block(self.out_buffer(), id, &block, true, max_frame);
                            self.local_end(id);
                            return true;
                        }
                    }
                }
                Poll::Ready(None) => {
                    stream.body = None;
                    stream.pending = Some(Bytes::new());
                    stream.pending_ends = true;
                }
                Poll::Ready(Some(Err(error))) => {
                    tracing::debug!(stream = id, %error, "response body failed; resetting the stream");
                    self.send_reset(id, Reason::INTERNAL_ERROR);
                    self.remove_stream(id, Reason::INTERNAL_ERROR);
                    return true;
                }
            }
        }
    }

    /// Writes as much of a stream's pending data as the windows allow.
    fn send_pending(&mut self, index: usize) -> Sent {
        let max_frame = self.peer_max_frame;
        loop {
            let stream = &mut self.streams[index];
            let Some(data) = stream.pending.as_mut() else {
                return Sent::Drained;
            };
            let id = stream.id;
            let window = stream.send_window.min(self.send_window).max(0);
            let take = data
                .len()
                .min(max_frame)
                .min(usize::try_from(window).unwrap_or(0));
            if take == 0 && !data.is_empty() {
                return Sent::Blocked;
            }
            let chunk = data.split_to(take);
            let last = data.is_empty();
            let ends = last && stream.pending_ends;
            if last {
                stream.pending = None;
            }
            let len = i64::try_from(take).unwrap_or(i64::MAX);
            stream.send_window -= len;
            self.send_window -= len;
            let out = self.out_buffer();
            frame::put_data(out, id, &chunk, ends);
            if ends {
                self.local_end(id);
                return Sent::Ended;
            }
            if last {
                return Sent::Drained;
            }
            if self.backlog() >= OUT_HIGH_WATER {
                return Sent::Blocked;
            }
        }
    }

    /// The response ended (END_STREAM written).
    fn local_end(&mut self, id: u32) {
        let Some(index) = self.position(id) else {
            return;
        };
        if !self.streams[index].remote_ended {
            // The caller need not send the rest of a request already answered (RFC 9113
            // §8.1).
            self.send_reset(id, Reason::NO_ERROR);
        }
        self.remove_stream(id, Reason::NO_ERROR);
    }

    /// Turns bytes the request bodies consumed into window updates.
    fn credit_releases(&mut self) {
        let threshold = i64::from(self.settings.stream_window / 2);
        let mut conn_credit = 0u32;
        for index in 0..self.streams.len() {
            let stream = &mut self.streams[index];
            let Some(shared) = &stream.recv else {
                continue;
            };
            let released = shared.take_released().min(stream.uncredited);
            if released == 0 {
                continue;
            }
            stream.uncredited -= released;
            conn_credit = conn_credit.saturating_add(released);
            if stream.remote_ended {
                continue;
            }
            // Only what the consumer took is credited: bytes still queued keep counting
            // against the window, so a slow provider bounds what a caller can send.
            stream.stream_credit += released;
            if i64::from(stream.stream_credit) >= threshold {
                let credit = std::mem::take(&mut stream.stream_credit);
                stream.recv_window += i64::from(credit);
                let id = stream.id;
                frame::put_window_update(self.out_buffer(), id, credit);
            }
        }
        self.credit_connection(conn_credit);
    }

    /// Gives `bytes` back to the connection window, in WINDOW_UPDATEs of at least half of it.
    fn credit_connection(&mut self, bytes: u32) {
        self.conn_unreleased = self.conn_unreleased.saturating_add(bytes);
        if self.conn_unreleased >= self.settings.connection_window / 2 {
            let credit = std::mem::take(&mut self.conn_unreleased);
            self.recv_window += i64::from(credit);
            frame::put_window_update(self.out_buffer(), 0, credit);
        }
    }

    /// Writes queued output; whether anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut wrote = false;
        while self.written < self.out.len() {
            let n = match Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(result) => result?,
                Poll::Pending if wrote => return Poll::Ready(Ok(true)),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            wrote = true;
        }
        // Everything went out: an idle connection keeps no output buffer.
        self.out = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(wrote))
    }
}

/// How far a stream's pending data got.
enum Sent {
    /// The windows are closed (or the output is full).
    Blocked,
    /// All of it went out; the body may have more.
    Drained,
    /// It went out with END_STREAM.
    Ended,
}
