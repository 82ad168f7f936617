//! Lingering close: when the server is done with a connection, the socket is not closed at once
//! but half-closed (FIN, or TLS `close_notify`) and read until the peer closes too, for at most
//! [`LINGER_TIMEOUT`] and [`LINGER_MAX_BYTES`], as nginx and Apache do.
//!
//! Why: closing a socket whose receive buffer still holds unread bytes makes the kernel answer
//! with a TCP reset, and a reset can destroy data the peer has not read yet. That is exactly what
//! happened to a client sending a `/ws` message over the size limit: the server refuses it at the
//! frame header and sends close 1009, but the client is still writing the payload, so the close
//! frame was often lost in a reset (reliability IV-3). Draining the rest lets the 1009 arrive.
//!
//! Only a connection the server has written to lingers: with nothing sent there is nothing a
//! reset could destroy, so a socket that never got a reply (silent, Slowloris, a refused TLS
//! client) is closed at once.
//!
//! The wait happens in a detached task after the connection's own task has ended, so it holds no
//! `/ws` slot and delays nothing; at most [`MAX_LINGERING`] sockets linger at once (beyond that,
//! they are closed at once as before).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;

/// How long a closed connection is drained at most.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// How many bytes are drained at most (the rest of an oversized message is at most this).
pub const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Most sockets lingering at once.
pub const MAX_LINGERING: usize = 256;

static LINGERING: Semaphore = Semaphore::const_new(MAX_LINGERING);

/// A stream that lingers when dropped (inside a tokio runtime).
#[derive(Debug)]
pub struct Lingering<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// `None` only while dropping.
    inner: Option<T>,
    /// Whether anything was written to the peer.
    wrote: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Lingering<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner: Some(inner), wrote: false }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> Option<&T> {
        self.inner.as_ref()
    }

    fn io(&mut self) -> io::Result<&mut T> {
        self.inner.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Lingering<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        if !self.wrote {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let Ok(permit) = LINGERING.try_acquire() else { return };
        runtime.spawn(async move {
            drain(inner).await;
            drop(permit);
        });
    }
}

/// Half-closes `io` and reads until the peer closes, the time or byte budget runs out, or an
/// error; returns the bytes drained.
async fn drain<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) -> usize {
    let deadline = tokio::time::Instant::now() + LINGER_TIMEOUT;
    if tokio::time::timeout_at(deadline, io.shutdown()).await.is_err() {
        return 0;
    }
    let mut buffer = vec![0u8; 16 * 1024];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(deadline, io.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => drained += read,
            _ => break,
        }
    }
    drained
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Lingering<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        };
        this.wrote |= matches!(result, Poll::Ready(Ok(n)) if n > 0);
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        };
        this.wrote |= matches!(result, Poll::Ready(Ok(n)) if n > 0);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_stream_is_half_closed_and_drained_so_the_peer_reads_everything() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut server = Lingering::new(server);
        server.write_all(b"close 1009").await.unwrap();
        drop(server);
        // The peer is still writing a large payload; it is read and discarded, so the writes
        // complete, and the peer then reads what was sent before the close and the end.
        let payload = vec![7u8; 1024 * 1024];
        tokio::time::timeout(Duration::from_secs(5), client.write_all(&payload))
            .await
            .expect("the lingering side keeps reading")
            .unwrap();
        let mut received = Vec::new();
        client.shutdown().await.unwrap();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"close 1009");
    }

    #[tokio::test]
    async fn a_stream_never_written_to_closes_at_once() {
        let (mut client, server) = tokio::io::duplex(1024);
        drop(Lingering::new(server));
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(500), client.read_to_end(&mut rest));
        assert_eq!(read.await.expect("closed at once").unwrap(), 0);
    }

    #[tokio::test]
    async fn draining_stops_at_the_time_budget() {
        let (_client, server) = tokio::io::duplex(1024);
        let started = tokio::time::Instant::now();
        assert_eq!(drain(server).await, 0);
        let waited = started.elapsed();
        assert!(waited >= LINGER_TIMEOUT && waited < LINGER_TIMEOUT * 2, "{waited:?}");
    }
}
