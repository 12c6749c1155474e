//! What a client may hold on to: how long it may take to send a request's
//! headers and body, how long a connection may sit without a request in
//! progress, and how many connections there may be at once. Without these
//! bounds a "slow loris" client that trickles bytes keeps connections (and
//! their file descriptors and memory) forever.
//!
//! Where each bound is enforced:
//!
//! - connections: [`ConnectionAcceptor`] takes a permit of a semaphore for
//!   every accepted TCP connection and closes one that arrives when none is
//!   left, before the TLS handshake;
//! - TLS handshake and the first request's headers (HTTP/1.1 and HTTP/2):
//!   `header_timeout`, through axum-server's handshake and first-request
//!   timeouts; the headers of each later HTTP/1.1 request (hyper's header
//!   read timeout, which also closes a kept-alive HTTP/1.1 connection idle
//!   that long);
//! - a connection with no request in progress (an HTTP/2 connection between
//!   requests, or one trickling the frames of a request that never
//!   completes): `idle_timeout`, by [`GuardedIo`] under TLS, which fails the
//!   connection's reads once it has been without a request that long, however
//!   many bytes trickle in;
//! - the request body: `body_timeout`, by [`read_body`], which reads the
//!   whole body before the handler runs and answers `408` when it is late.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode as HttpStatus, header};
use axum::middleware::Next;
use axum::response::Response;
use axum_server::accept::Accept;
use ferrosim_smdp::status::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;
use tracing::warn;

use crate::http::{failed_body, json_response};

/// Largest request body accepted (the ES9+ and ES2+ requests are a few
/// kilobytes; this is axum's default limit).
pub const MAX_REQUEST_BODY: usize = 2 * 1024 * 1024;

/// Bounds on what one client may hold (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// TLS handshake plus the first request's headers; each later HTTP/1.1
    /// request's headers (and the idle time of a kept-alive HTTP/1.1 connection).
    pub header_timeout: Duration,
    /// The whole body of one request, from when its headers arrived.
    pub body_timeout: Duration,
    /// A connection without a request in progress (HTTP/2 keep-alive).
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Requests in progress on one connection and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && let Ok(mut since) = self.idle_since.lock()
        {
            *since = Instant::now();
        }
    }

    /// When the connection must be closed for idleness, if no request is in progress.
    fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.idle_since
            .lock()
            .ok()
            .map(|since| *since + idle_timeout)
    }
}

/// The inner acceptor under TLS: the connection limit, and the idle guard
/// and request accounting of each connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionAcceptor {
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    /// Seconds (since `started`) of the last "connection limit reached"
    /// warning, so that a flood logs one line per interval.
    last_warning: Arc<AtomicU64>,
    started: Instant,
}

impl ConnectionAcceptor {
    pub(crate) fn new(limits: &HttpLimits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle_timeout: limits.idle_timeout,
            last_warning: Arc::new(AtomicU64::new(u64::MAX)),
            started: Instant::now(),
        }
    }

    fn warn_limit(&self) {
        const INTERVAL_SECS: u64 = 10;
        let now = self.started.elapsed().as_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == u64::MAX || now >= last + INTERVAL_SECS)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                "connection limit reached: closing new connections (at most one such line per {INTERVAL_SECS} s)"
            );
        }
    }
}

impl<S> Accept<TcpStream, S> for ConnectionAcceptor {
    type Stream = GuardedIo<TcpStream>;
    type Service = CountingService<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.warn_limit();
            return std::future::ready(Err(io::Error::other("connection limit reached")));
        };
        let activity = Arc::new(Activity::new());
        std::future::ready(Ok((
            GuardedIo {
                inner: stream,
                activity: Arc::clone(&activity),
                idle_timeout: self.idle_timeout,
                timer: Box::pin(tokio::time::sleep(self.idle_timeout)),
                _permit: permit,
            },
            CountingService {
                inner: service,
                activity,
            },
        )))
    }
}

/// A connection's byte stream that fails its reads once the connection has
/// been without a request in progress for the idle timeout, and that holds
/// the connection's permit until it is dropped.
#[derive(Debug)]
pub(crate) struct GuardedIo<I> {
    inner: I,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl<I> GuardedIo<I> {
    fn expired(&self) -> bool {
        self.activity
            .idle_deadline(self.idle_timeout)
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

fn idle_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection closed: no request in progress within the idle timeout",
    )
}

impl<I: AsyncRead + Unpin> AsyncRead for GuardedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            // Bytes trickling in do not extend the deadline.
            if result.is_ok() && this.expired() {
                return Poll::Ready(Err(idle_error()));
            }
            return Poll::Ready(result);
        }
        // Nothing to read: make sure this task wakes at the deadline (or, with
        // a request in progress, to look again one idle period later).
        loop {
            let now = Instant::now();
            let wake = match this.activity.idle_deadline(this.idle_timeout) {
                Some(deadline) if now >= deadline => return Poll::Ready(Err(idle_error())),
                Some(deadline) => deadline,
                None => now + this.idle_timeout,
            };
            let wake = tokio::time::Instant::from_std(wake);
            if this.timer.deadline() != wake {
                this.timer.as_mut().reset(wake);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for GuardedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection's service, counting the requests in progress for
/// [`GuardedIo`].
#[derive(Debug, Clone)]
pub(crate) struct CountingService<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Ends a request's accounting when its response is ready or abandoned.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl<S, R> Service<R> for CountingService<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.activity.begin();
        let guard = InFlight(Arc::clone(&self.activity));
        let future = self.inner.call(request);
        Box::pin(async move {
            let _guard = guard;
            future.await
        })
    }
}

/// Middleware: reads the whole request body within the body timeout (and
/// at most [`MAX_REQUEST_BODY`] bytes) before the handler runs. A late body
/// is answered `408`, an oversized one `413`, both with a `Failed` JSON
/// body, and the connection is closed.
pub(crate) async fn read_body(
    State(limits): State<HttpLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let http1 = parts.version < axum::http::Version::HTTP_2;
    let read = axum::body::to_bytes(body, MAX_REQUEST_BODY);
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                closing(
                    http1,
                    HttpStatus::PAYLOAD_TOO_LARGE,
                    StatusCode::INVALID_REQUEST_FORMAT,
                    format!("request body larger than {MAX_REQUEST_BODY} bytes"),
                )
            } else {
                closing(
                    http1,
                    HttpStatus::BAD_REQUEST,
                    StatusCode::INVALID_REQUEST_FORMAT,
                    format!("request body could not be read: {e}"),
                )
            }
        }
        Err(_) => {
            warn!(
                path = %parts.uri.path(),
                timeout_secs = limits.body_timeout.as_secs_f64(),
                "request body not received in time; closing the connection"
            );
            closing(
                http1,
                HttpStatus::REQUEST_TIMEOUT,
                StatusCode::INVALID_REQUEST_FORMAT,
                format!(
                    "request body not received within {} s",
                    limits.body_timeout.as_secs_f64()
                ),
            )
        }
    }
}

/// A `Failed` answer after which the connection closes (HTTP/1.1 says so
/// with `Connection: close`; HTTP/2 has no such header and resets the stream
/// whose body was not read).
fn closing(http1: bool, status: HttpStatus, code: StatusCode, message: String) -> Response {
    let mut response = json_response(status, failed_body(code, Some(message)));
    if http1 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
