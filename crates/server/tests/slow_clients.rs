//! Slow and greedy clients on loopback: raw TCP, raw TLS with hand-written
//! HTTP/1.1, and HTTP/2 frames through the `h2` crate. Each trickles bytes
//! (or nothing) and must be dropped by the server's header, body and idle
//! timeouts; connections beyond the limit are closed at once. Every wait is
//! bounded: a server without the bounds fails the test instead of hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrosim_server::sandbox::tls_identity;
use ferrosim_server::{HttpLimits, RunningServer, ServerOptions};
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest any step may take before the test gives up on the server.
const BOUND: Duration = Duration::from_secs(15);
/// Pause between trickled bytes.
const TRICKLE: Duration = Duration::from_millis(200);

fn tight() -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 64,
    }
}

async fn start(smdp: &TestSmdp, limits: HttpLimits) -> RunningServer {
    let mut options = ServerOptions::new(tls_identity(&smdp.pki));
    options.http = limits;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ferrosim_server::start(listener, smdp.smdp.clone(), options)
        .await
        .unwrap()
}

async fn tls(smdp: &TestSmdp, addr: SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    try_tls(smdp, addr, alpn).await.unwrap()
}

async fn try_tls(
    smdp: &TestSmdp,
    addr: SocketAddr,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(smdp.pki.ci.certificate.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Writes `bytes` one at a time with a pause between them while watching
/// the read side; returns what was read once the server closed the
/// connection, or `None` when it was still open after everything was sent.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(stream: S, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let read_all = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let write_slowly = async move {
        for b in bytes {
            if writer.write_all(&[b]).await.is_err() || writer.flush().await.is_err() {
                // The server closed: let the reader see the end.
                return tokio::time::sleep(BOUND).await;
            }
            tokio::time::sleep(TRICKLE).await;
        }
    };
    tokio::select! {
        got = tokio::time::timeout(BOUND, read_all) => got.ok(),
        () = write_slowly => None,
    }
}

/// Many bytes: more than the bound lets a server wait for.
fn endless_header_line() -> Vec<u8> {
    let mut v = b"X-Slow: ".to_vec();
    v.extend(std::iter::repeat_n(b'a', 200));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let server = start(&smdp, tight()).await;
    let addr = server.local_addr();

    // TCP trickling a TLS ClientHello that never completes: dropped by the
    // handshake timeout.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let hello = [
        &[0x16, 0x03, 0x01, 0x3F, 0xFF, 0x01, 0x00, 0x3F, 0xFB][..],
        &[0; 60],
    ]
    .concat();
    assert!(
        trickle(tcp, hello).await.is_some(),
        "a connection trickling a TLS record was kept"
    );

    // HTTP/1.1 headers trickled after the handshake.
    let mut s = tls(&smdp, addr, b"http/1.1").await;
    s.write_all(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(
        trickle(s, endless_header_line()).await.is_some(),
        "HTTP/1.1 headers trickled forever were accepted"
    );

    // A complete HTTP/1.1 request first, then the next one's headers trickled.
    let mut s = tls(&smdp, addr, b"http/1.1").await;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        trickle(s, endless_header_line()).await.is_some(),
        "a kept-alive HTTP/1.1 connection trickling headers was kept"
    );

    // HTTP/1.1 body trickled: 408 with a Failed body, then closed.
    let mut s = tls(&smdp, addr, b"http/1.1").await;
    s.write_all(
        b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
    )
    .await
    .unwrap();
    let answer = trickle(s, vec![b' '; 200])
        .await
        .expect("a trickled HTTP/1.1 body was waited for");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"status\":\"Failed\""), "{text}");

    // HTTP/2: the preface and then nothing useful, trickled.
    let mut s = tls(&smdp, addr, b"h2").await;
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // A SETTINGS frame header announcing a payload that never completes.
    assert!(
        trickle(
            s,
            [&[0, 0, 60, 4, 0, 0, 0, 0, 0][..], &[0; 60][..]].concat()
        )
        .await
        .is_some(),
        "an HTTP/2 connection without a request was kept"
    );

    // HTTP/2: a request, then the connection idles (or trickles pings).
    let s = tls(&smdp, addr, b"h2").await;
    let (mut client, connection) = h2::client::handshake(s).await.unwrap();
    let conn = tokio::spawn(connection);
    let request = axum::http::Request::get("https://localhost/health")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(BOUND, conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection was kept");

    // HTTP/2: a request whose body trickles: 408.
    let s = tls(&smdp, addr, b"h2").await;
    let (client, connection) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request =
        axum::http::Request::post("https://localhost/gsma/rsp2/es9plus/initiateAuthentication")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let feeder = tokio::spawn(async move {
        for _ in 0..75 {
            if body
                .send_data(axum::body::Bytes::from_static(b" "), false)
                .is_err()
            {
                return;
            }
            tokio::time::sleep(TRICKLE).await;
        }
    });
    let response = tokio::time::timeout(BOUND, response)
        .await
        .expect("a trickled HTTP/2 body was waited for")
        .unwrap();
    assert_eq!(response.status(), 408);
    feeder.abort();

    // The server still serves well-behaved clients.
    let mut s = tls(&smdp, addr, b"http/1.1").await;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(BOUND, s.read_to_end(&mut all))
        .await
        .unwrap()
        .ok();
    assert!(all.starts_with(b"HTTP/1.1 200"));
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let limits = HttpLimits {
        max_connections: 3,
        ..HttpLimits::default()
    };
    let server = start(&smdp, limits).await;
    let addr = server.local_addr();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tls(&smdp, addr, b"http/1.1").await);
    }
    // The fourth is accepted by the kernel and closed by the server at once.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(BOUND, extra.read(&mut buf))
        .await
        .expect("a connection beyond the limit was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // One held connection goes away: a new client is served again.
    held.pop();
    let mut served = false;
    for _ in 0..50 {
        let Ok(mut s) = try_tls(&smdp, addr, b"http/1.1").await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok();
        let mut all = Vec::new();
        let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut all)).await;
        if all.starts_with(b"HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "no connection served after one was released");
    // The held ones still work.
    let s = &mut held[0];
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(held);
    server.shutdown(Duration::from_secs(1)).await;
}
