//! The controller's listeners, bounded: the webhook port is exposed to the internet, so
//! neither many connections nor slow ones may take the process down.
//!
//! At most [`MAX_CONNECTIONS`] are served at once (more wait in the kernel's backlog, so
//! file descriptors stay bounded); a connection that sends nothing for [`IDLE_TIMEOUT`]
//! (a slow or idle client, between requests or mid-headers) is closed, and none lives
//! longer than [`CONNECTION_LIFETIME`]. Body sizes and their read timeouts are the
//! handlers' (`http`), which know what each route may receive.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections served at once on one listener.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection that sends nothing for this long is closed: longer than any answer takes
/// (a webhook handed to the leader waits at most 10 s), since the server may read ahead
/// for the next request while it answers.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// No connection is kept longer than this (clients reconnect; webhooks take milliseconds).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// A TCP listener that serves a bounded number of connections, each with timeouts.
pub struct Bounded {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Bounded {
    pub fn new(listener: TcpListener) -> Bounded {
        Bounded::with_limits(listener, MAX_CONNECTIONS, IDLE_TIMEOUT)
    }

    pub fn with_limits(listener: TcpListener, connections: usize, idle: Duration) -> Bounded {
        Bounded {
            listener,
            permits: Arc::new(Semaphore::new(connections)),
            idle,
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = BoundedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Waiting for a permit before accepting leaves the rest in the backlog.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    return (BoundedStream::new(stream, permit, self.idle), address);
                }
                // Out of file descriptors or a connection reset before accept: wait a
                // little rather than spin, as axum's own listener does.
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// One connection: its slot is given back when it is dropped; reading fails once the
/// client has been silent for the idle timeout or the connection is too old.
pub struct BoundedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection must have sent something by.
    quiet_until: Pin<Box<Sleep>>,
    /// When the connection ends regardless.
    ends_at: Instant,
}

impl BoundedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle: Duration) -> BoundedStream {
        let now = Instant::now();
        BoundedStream {
            stream,
            _permit: permit,
            idle,
            quiet_until: Box::pin(tokio::time::sleep_until(now + idle)),
            ends_at: now + CONNECTION_LIFETIME,
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = (Instant::now() + self.idle).min(self.ends_at);
                    self.quiet_until.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match self.quiet_until.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `GET /` on a bounded listener; returns its address.
    async fn serve(connections: usize, idle: Duration) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let bounded = Bounded::with_limits(listener, connections, idle);
        tokio::spawn(async move { axum::serve(bounded, router).await });
        address
    }

    /// Reads until the server closes the connection; how long that took.
    async fn closed_after(stream: &mut TcpStream) -> Duration {
        let started = std::time::Instant::now();
        let mut buffer = [0; 256];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
        started.elapsed()
    }

    #[tokio::test]
    async fn silent_and_slow_clients_are_closed_and_free_their_slot() {
        let idle = Duration::from_millis(200);
        let address = serve(2, idle).await;
        // Silent from the start, and silent mid-headers (a slowloris): both closed.
        let mut silent = TcpStream::connect(address).await.unwrap();
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Both slots are taken: a third client is not served until one is freed.
        let mut third = TcpStream::connect(address).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let waited = std::time::Instant::now();
        assert!(closed_after(&mut silent).await < Duration::from_secs(2));
        assert!(closed_after(&mut slow).await < Duration::from_secs(2));
        let mut answer = String::new();
        third.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(waited.elapsed() >= idle / 2, "the third was served at once");
    }
}
