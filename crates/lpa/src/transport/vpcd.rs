//! The card side of vsmartcard's `vpcd` protocol: a virtual card that
//! connects to the vpcd reader driver of pcsc-lite, which then shows it in a
//! reader to every PC/SC program (`opensc-tool`, `pcsc_scan`, lpac, ...).
//!
//! vpcd listens on TCP (127.0.0.1:35963 for its first reader). Each message
//! in either direction is a 2-byte big-endian length followed by that many
//! bytes. From vpcd, a 1-byte message is a control: `0` power off, `1` power
//! on, `2` reset (none of them answered) and `4` get ATR (answered with the
//! ATR); a longer message is a command APDU, answered with the response APDU.
//!
//! [`serve`] connects, answers until vpcd goes away, and connects again
//! (pcscd restarts, for example), until asked to stop.
//!
//! Latency: vpcd writes each command as two `send` calls (the length, then
//! the APDU) on a socket with Nagle's algorithm on, so the APDU waits until
//! the card side acknowledges the length. A delayed acknowledgement (40 ms on
//! Linux) then costs 40 ms per APDU: a profile download of ~150 STORE DATA
//! blocks took six seconds. The card side therefore acknowledges at once
//! (`TCP_QUICKACK`, re-armed after every read because Linux drops it) and
//! sends each answer in one segment (`TCP_NODELAY`, one write per frame).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::TransportError;

/// Where vpcd listens for the card of its first reader.
pub const DEFAULT_ADDR: &str = "127.0.0.1:35963";

/// Control byte: power the card off.
const CTRL_OFF: u8 = 0;
/// Control byte: power the card on.
const CTRL_ON: u8 = 1;
/// Control byte: reset the card.
const CTRL_RESET: u8 = 2;
/// Control byte: send the ATR.
const CTRL_ATR: u8 = 4;
/// Answer when the card gives a response without a status word: `6F00`,
/// "no precise diagnosis".
const SW_NO_DIAGNOSIS: [u8; 2] = [0x6F, 0x00];

/// What vpcd asks of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcdEvent<'a> {
    /// The reader powers the card off (also sent when vpcd disconnects).
    PowerOff,
    /// The reader powers the card on.
    PowerOn,
    /// The reader resets the card (warm reset).
    Reset,
    /// The reader asks for the ATR: answer with it.
    GetAtr,
    /// A command APDU: answer with the response APDU (data || SW1 SW2).
    Apdu(&'a [u8]),
}

/// How [`serve_with`] behaves.
#[derive(Debug, Clone)]
pub struct VpcdOptions {
    /// Wait between connection attempts while vpcd is not listening.
    pub reconnect_delay: Duration,
    /// How often a blocked read wakes up to look at `stop`.
    pub poll_interval: Duration,
    /// Set to `true` to make [`serve_with`] return.
    pub stop: Arc<AtomicBool>,
}

impl Default for VpcdOptions {
    fn default() -> Self {
        Self {
            reconnect_delay: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Serves `card` to vpcd at `addr` forever, reconnecting whenever vpcd goes
/// away. `card` answers [`VpcdEvent::GetAtr`] with the ATR and
/// [`VpcdEvent::Apdu`] with the response APDU; its answer to the power
/// events is ignored (return an empty vector).
pub fn serve<A, F>(addr: A, card: F) -> Result<(), TransportError>
where
    A: ToSocketAddrs,
    F: FnMut(VpcdEvent<'_>) -> Vec<u8>,
{
    serve_with(addr, card, &VpcdOptions::default())
}

/// [`serve`] with options; returns `Ok(())` once `options.stop` is set.
/// Fails only when `addr` does not resolve.
pub fn serve_with<A, F>(addr: A, mut card: F, options: &VpcdOptions) -> Result<(), TransportError>
where
    A: ToSocketAddrs,
    F: FnMut(VpcdEvent<'_>) -> Vec<u8>,
{
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| TransportError::Io {
            operation: "resolving the vpcd address",
            source,
        })?
        .collect();
    let mut announced_wait = false;
    while !options.stop.load(Ordering::Relaxed) {
        match connect(&addrs) {
            Ok(stream) => {
                announced_wait = false;
                tracing::info!(peer = ?stream.peer_addr().ok(), "connected to vpcd");
                match session(stream, &mut card, options) {
                    Ok(()) => tracing::info!("vpcd closed the connection"),
                    Err(e) => tracing::warn!(error = %e, "vpcd connection lost"),
                }
                card(VpcdEvent::PowerOff);
            }
            Err(e) => {
                if !announced_wait {
                    tracing::info!(error = %e, "vpcd not reachable yet, retrying");
                    announced_wait = true;
                }
                sleep_unless_stopped(options.reconnect_delay, options);
            }
        }
    }
    Ok(())
}

/// Connects to the first address that accepts.
fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Answers messages on one connection until it closes or `stop` is set.
fn session<F>(
    mut stream: TcpStream,
    card: &mut F,
    options: &VpcdOptions,
) -> Result<(), TransportError>
where
    F: FnMut(VpcdEvent<'_>) -> Vec<u8>,
{
    let io = |operation| move |source| TransportError::Io { operation, source };
    stream
        .set_read_timeout(Some(options.poll_interval.max(Duration::from_millis(1))))
        .map_err(io("configuring the vpcd socket"))?;
    stream
        .set_nodelay(true)
        .map_err(io("configuring the vpcd socket"))?;
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if options.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        quick_ack(&stream);
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading from vpcd")(e)),
        }
        while let Some((message, used)) = next_frame(&pending) {
            if let Some(reply) = answer(message, card) {
                stream
                    .write_all(&frame(&reply)?)
                    .map_err(io("writing to vpcd"))?;
            }
            pending.drain(..used);
        }
    }
}

/// Asks the kernel to acknowledge received data at once instead of delaying
/// the ACK (see the module documentation). Linux leaves quick-ACK mode by
/// itself, so this is repeated before every read; failure only costs speed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(stream: &TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::debug!(error = %e, "TCP_QUICKACK not set");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_stream: &TcpStream) {}

/// The first complete frame of `buffer` and the bytes it occupies.
fn next_frame(buffer: &[u8]) -> Option<(&[u8], usize)> {
    let header = buffer.get(..2)?;
    let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let message = buffer.get(2..2 + len)?;
    Some((message, 2 + len))
}

/// The card's answer to one message, if the message wants one.
fn answer<F>(message: &[u8], card: &mut F) -> Option<Vec<u8>>
where
    F: FnMut(VpcdEvent<'_>) -> Vec<u8>,
{
    match message {
        [] => {
            tracing::warn!("ignoring an empty vpcd message");
            None
        }
        [CTRL_OFF] => {
            card(VpcdEvent::PowerOff);
            None
        }
        [CTRL_ON] => {
            card(VpcdEvent::PowerOn);
            None
        }
        [CTRL_RESET] => {
            card(VpcdEvent::Reset);
            None
        }
        [CTRL_ATR] => Some(card(VpcdEvent::GetAtr)),
        [other] => {
            tracing::warn!(control = other, "ignoring an unknown vpcd control message");
            None
        }
        apdu => {
            let mut response = card(VpcdEvent::Apdu(apdu));
            if response.len() < 2 {
                tracing::warn!("the card answered without a status word; sending 6F00");
                response = SW_NO_DIAGNOSIS.to_vec();
            }
            Some(response)
        }
    }
}

/// `length || data`.
fn frame(data: &[u8]) -> Result<Vec<u8>, TransportError> {
    let len = u16::try_from(data.len()).map_err(|_| {
        TransportError::Protocol(format!(
            "a {}-byte answer does not fit a vpcd frame",
            data.len()
        ))
    })?;
    let mut out = Vec::with_capacity(2 + data.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

fn sleep_unless_stopped(total: Duration, options: &VpcdOptions) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !options.stop.load(Ordering::Relaxed) {
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn send(stream: &mut TcpStream, data: &[u8]) {
        stream.write_all(&frame(data).unwrap()).unwrap();
    }

    fn receive(stream: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut data = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut data).unwrap();
        data
    }

    #[test]
    fn framing() {
        assert_eq!(next_frame(&[0]), None);
        assert_eq!(next_frame(&[0, 2, 1]), None);
        assert_eq!(next_frame(&[0, 1, 4, 9]), Some((&[4u8][..], 3)));
        assert_eq!(frame(&[1, 2]).unwrap(), vec![0, 2, 1, 2]);
        assert!(frame(&vec![0; 70_000]).is_err());
    }

    /// A fake vpcd: checks controls, ATR, APDUs, and that the card side
    /// reconnects after vpcd drops the connection.
    #[test]
    fn serves_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let options = VpcdOptions {
            reconnect_delay: Duration::from_millis(20),
            poll_interval: Duration::from_millis(20),
            ..VpcdOptions::default()
        };
        let stop = options.stop.clone();
        let (events_tx, events_rx) = std::sync::mpsc::channel();
        let card = std::thread::spawn(move || {
            serve_with(
                addr,
                move |event: VpcdEvent<'_>| {
                    let reply = match event {
                        VpcdEvent::GetAtr => vec![0x3B, 0x00],
                        VpcdEvent::Apdu(apdu) => {
                            let mut r = apdu.to_vec();
                            r.extend_from_slice(&[0x90, 0x00]);
                            r
                        }
                        VpcdEvent::PowerOn | VpcdEvent::PowerOff | VpcdEvent::Reset => Vec::new(),
                    };
                    let name = match event {
                        VpcdEvent::PowerOff => "off",
                        VpcdEvent::PowerOn => "on",
                        VpcdEvent::Reset => "reset",
                        VpcdEvent::GetAtr => "atr",
                        VpcdEvent::Apdu(_) => "apdu",
                    };
                    let _ = events_tx.send(name);
                    reply
                },
                &options,
            )
        });

        for round in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            send(&mut s, &[CTRL_ON]);
            send(&mut s, &[CTRL_ATR]);
            assert_eq!(receive(&mut s), vec![0x3B, 0x00], "round {round}");
            // Two messages in one write, one split across writes.
            let mut both = frame(&[0x00, 0xA4]).unwrap();
            both.extend(frame(&[CTRL_RESET]).unwrap());
            s.write_all(&both).unwrap();
            assert_eq!(receive(&mut s), vec![0x00, 0xA4, 0x90, 0x00]);
            let f = frame(&[0x80, 0xE2, 0x91, 0x00]).unwrap();
            s.write_all(&f[..3]).unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            s.write_all(&f[3..]).unwrap();
            assert_eq!(receive(&mut s), vec![0x80, 0xE2, 0x91, 0x00, 0x90, 0x00]);
            send(&mut s, &[CTRL_OFF]);
            drop(s);
        }
        let one_round = ["on", "atr", "apdu", "reset", "apdu", "off", "off"];
        let expected = [one_round, one_round].concat();
        // Wait for the card side to see everything before stopping it (a stop
        // seen first would leave the last messages unread).
        let mut events: Vec<&str> = (0..expected.len())
            .map_while(|_| events_rx.recv_timeout(Duration::from_secs(10)).ok())
            .collect();
        stop.store(true, Ordering::Relaxed);
        card.join().unwrap().unwrap();
        events.extend(events_rx.try_iter());
        assert_eq!(events[..expected.len()], expected[..]);
        // A reconnection racing with the stop may add power-offs, nothing else.
        assert!(events[expected.len()..].iter().all(|e| *e == "off"));
    }

    proptest::proptest! {
        #[test]
        fn framing_never_panics_and_round_trips(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Some((message, used)) = next_frame(&data) {
                proptest::prop_assert_eq!(used, message.len() + 2);
                proptest::prop_assert_eq!(frame(message).unwrap(), data[..used].to_vec());
            }
            let framed = frame(&data).unwrap();
            proptest::prop_assert_eq!(next_frame(&framed), Some((&data[..], data.len() + 2)));
        }
    }

    #[test]
    fn unresolvable_address_is_an_error() {
        let r = serve_with(
            "127.0.0.1:not-a-port",
            |_: VpcdEvent<'_>| Vec::new(),
            &VpcdOptions::default(),
        );
        assert!(matches!(r, Err(TransportError::Io { .. })));
    }
}
