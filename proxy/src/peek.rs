//! Waiting for a connection's first bytes without consuming them: the listeners that choose a
//! protocol (`auto`) or an HTTP version (`http`) from those bytes peek until they give a verdict,
//! then hand the untouched socket on.

use std::time::Duration;

use tokio::net::TcpStream;

/// Longest pause between two peeks while the verdict needs more bytes.
const MAX_PEEK_PAUSE: Duration = Duration::from_millis(20);

/// What the bytes seen so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<T> {
    /// Decided.
    Known(T),
    /// Nothing this listener serves.
    Unknown,
    /// Too few bytes to tell.
    NeedMore,
}

/// Peeks at up to `N` first bytes of `stream` until `judge` decides; `None` when the bytes are
/// [`Verdict::Unknown`] or the caller closes first. The caller bounds the wait.
pub async fn until<T, const N: usize>(
    stream: &TcpStream,
    judge: impl Fn(&[u8]) -> Verdict<T>,
) -> Option<T> {
    let mut buf = [0u8; N];
    let mut pause = Duration::from_millis(1);
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        match judge(buf.get(..n)?) {
            Verdict::Known(verdict) => return Some(verdict),
            Verdict::Unknown => return None,
            Verdict::NeedMore => {
                // Peeking does not consume, so the socket stays readable: wait a little before
                // looking again instead of spinning. Most callers send a whole first message
                // at once, so this path is rare; new bytes restart the short pauses.
                if n > seen {
                    seen = n;
                    pause = Duration::from_millis(1);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PEEK_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn judge(bytes: &[u8]) -> Verdict<usize> {
        match bytes {
            [b'x', ..] => Verdict::Unknown,
            _ if bytes.len() >= 4 => Verdict::Known(bytes.len()),
            _ => Verdict::NeedMore,
        }
    }

    #[tokio::test]
    async fn waits_for_enough_bytes_and_consumes_none() {
        let (mut client, server) = pair().await;
        client.write_all(b"ab").await.unwrap();
        let peeking = tokio::spawn(async move {
            let verdict = until::<_, 8>(&server, judge).await;
            (verdict, server)
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        client.write_all(b"cdef").await.unwrap();
        let (verdict, server) = peeking.await.unwrap();
        assert_eq!(verdict, Some(6));
        let mut still_there = [0u8; 6];
        assert_eq!(server.peek(&mut still_there).await.unwrap(), 6);
        assert_eq!(&still_there, b"abcdef");
    }

    #[tokio::test]
    async fn unknown_bytes_and_a_closed_caller_give_none() {
        let (mut client, server) = pair().await;
        client.write_all(b"xyz").await.unwrap();
        assert_eq!(until::<_, 8>(&server, judge).await, None);
        let (client, server) = pair().await;
        drop(client);
        assert_eq!(until::<_, 8>(&server, judge).await, None);
    }
}
