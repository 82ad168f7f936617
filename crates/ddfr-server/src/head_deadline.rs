//! A deadline for a connection's first request head: a client that connects and sends nothing,
//! or dribbles a request head slowly (Slowloris), is cut off after
//! [`crate::config::REQUEST_HEAD_TIMEOUT`] instead of holding a socket and a task forever.
//!
//! axum's `serve` gives hyper a timer for its header-read timeout, but that timeout does not
//! cover the first request on a fresh connection, so the listener wraps every accepted stream in
//! [`HeadDeadline`]: until the bytes read contain the blank line ending the first request head
//! (`\r\n\r\n`, or `\n\n` as hyper also accepts), a read past the deadline fails with `TimedOut` and hyper closes the connection.
//! After that the wrapper only passes bytes through; an upgraded `/ws` connection is governed by
//! the WebSocket's own ping/pong and idle rules, and later keep-alive requests by hyper's timer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::linger::Lingering;

/// A stream whose first request head must arrive within a deadline.
#[derive(Debug)]
pub struct HeadDeadline<T> {
    inner: T,
    /// `None` once the first head has been read.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last two bytes read (a blank line ends the head: `\n` after `\n` or `\n\r`).
    tail: [u8; 2],
}

impl<T> HeadDeadline<T> {
    /// Wraps `inner`, whose first request head must be read within `timeout` from now.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self { inner, deadline: Some(Box::pin(tokio::time::sleep(timeout))), tail: [0; 2] }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Whether the first request head has been read in full.
    pub fn head_complete(&self) -> bool {
        self.deadline.is_none()
    }

    /// Follows the bytes read; true once a blank line (the end of a request head) was seen.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            let [before, last] = self.tail;
            if byte == b'\n' && (last == b'\n' || (last == b'\r' && before == b'\n')) {
                return true;
            }
            self.tail = [last, byte];
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(deadline) = this.deadline.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        // Polled first so its waker is registered while the read waits.
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head in time",
            )));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && this.scan(&buf.filled()[before..])
        {
            this.deadline = None;
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A listener whose connections get a [`HeadDeadline`] and a lingering close
/// ([`crate::linger::Lingering`]).
#[derive(Debug)]
pub struct HeadDeadlineListener<L> {
    inner: L,
    timeout: Duration,
}

impl<L> HeadDeadlineListener<L> {
    /// Wraps `inner`; each accepted connection must send its first request head within `timeout`.
    pub fn new(inner: L, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for HeadDeadlineListener<L> {
    type Io = HeadDeadline<Lingering<L::Io>>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (HeadDeadline::new(Lingering::new(io), self.timeout), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const DEADLINE: Duration = Duration::from_millis(400);

    #[tokio::test]
    async fn silence_and_a_dribbled_head_time_out_a_complete_head_does_not() {
        // Nothing sent: the read fails at the deadline.
        let (_client, server) = tokio::io::duplex(1024);
        let mut wrapped = HeadDeadline::new(server, DEADLINE);
        let started = tokio::time::Instant::now();
        let error = wrapped.read(&mut [0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= DEADLINE, "{:?}", started.elapsed());

        // A head dribbled a byte at a time never completes in time, although bytes arrive.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n";
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wrapped = HeadDeadline::new(server, DEADLINE);
        tokio::spawn(async move {
            for byte in head {
                let _ = client.write_all(&[*byte]).await;
                tokio::time::sleep(DEADLINE / 4).await;
            }
        });
        let mut read = Vec::new();
        let error = loop {
            let mut chunk = [0u8; 64];
            match wrapped.read(&mut chunk).await {
                Ok(n) => read.extend_from_slice(&chunk[..n]),
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(!read.is_empty() && read.len() < head.len(), "{} bytes read", read.len());

        // A complete head (split across reads, the split inside the blank line) clears the
        // deadline for good: a read after it waits as long as it needs.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wrapped = HeadDeadline::new(server, DEADLINE);
        client.write_all(b"GET /ws HTTP/1.1\r\nX: a\r\n\r").await.unwrap();
        assert!(wrapped.read(&mut [0u8; 64]).await.unwrap() > 0);
        assert!(!wrapped.head_complete());
        client.write_all(b"\n").await.unwrap();
        assert_eq!(wrapped.read(&mut [0u8; 64]).await.unwrap(), 1);
        assert!(wrapped.head_complete());
        tokio::spawn(async move {
            tokio::time::sleep(DEADLINE * 2).await;
            client.write_all(b"late").await.unwrap();
        });
        let mut late = [0u8; 4];
        wrapped.read_exact(&mut late).await.unwrap();
        assert_eq!(&late, b"late");
    }

    #[test]
    fn the_head_end_is_found_across_any_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for split in 0..head.len() {
            let mut wrapped = HeadDeadline { inner: (), deadline: None, tail: [0; 2] };
            let (a, b) = head.split_at(split);
            let found = wrapped.scan(a) || wrapped.scan(b);
            assert!(found, "split at {split}");
        }
        let mut wrapped = HeadDeadline { inner: (), deadline: None, tail: [0; 2] };
        assert!(!wrapped.scan(b"GET / HTTP/1.1\r\nA: \r\r\nB: \n\r"));
        let mut bare = HeadDeadline { inner: (), deadline: None, tail: [0; 2] };
        assert!(bare.scan(b"GET / HTTP/1.1\nHost: a\n\n"));
    }
}
