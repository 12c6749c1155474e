//! The SM-DP+ a full-fidelity run talks to: `https://host[:port]`, checked
//! before anything is sent, and kept on loopback unless the operator says
//! otherwise (a load test aimed at someone else's server by a typo is the
//! mistake this guards against).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::error::SimError;

/// A checked target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host:port` without a trailing slash (the ES2+ base URL).
    pub base_url: String,
    /// `host:port` (the SM-DP+ address in the activation codes; the
    /// target's TLS certificate must name the host, and the SM-DP+ must
    /// call itself by this address).
    pub address: String,
    /// Whether every address the host resolved to is a loopback address.
    pub loopback: bool,
}

impl Target {
    /// Parses and checks `url`; `allow_remote` lets a host off loopback
    /// through. `resolve` maps `host:port` to socket addresses (the
    /// system's resolver in [`Target::parse`]).
    pub fn parse_with(
        url: &str,
        allow_remote: bool,
        resolve: &dyn Fn(&str) -> std::io::Result<Vec<SocketAddr>>,
    ) -> Result<Self, SimError> {
        let bad = |why: &str| SimError::Parameter(format!("--target {url:?}: {why}"));
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https:// (the SM-DP+'s ES2+ and ES9+ base URL)"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad(
                "give only https://host[:port], without a path, query or user",
            ));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("not host[:port]"))?;
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1..=65535"))?,
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad("the host is not a DNS name or an IP address"));
        }
        let address = format!("{host}:{port}");
        let loopback = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => ip.is_loopback(),
            Err(_) => {
                let resolved =
                    resolve(&address).map_err(|e| bad(&format!("cannot resolve the host: {e}")))?;
                !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback())
            }
        };
        if !loopback && !allow_remote {
            return Err(bad(
                "not a loopback address: full-fidelity runs stay on this machine unless --allow-remote is given",
            ));
        }
        Ok(Self {
            base_url: format!("https://{address}"),
            address,
            loopback,
        })
    }

    /// [`Target::parse_with`] with the system's resolver.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Self, SimError> {
        Self::parse_with(url, allow_remote, &|a| {
            a.to_socket_addrs().map(Iterator::collect)
        })
    }
}

/// `host` and the optional port of `authority` (IPv6 hosts in brackets).
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            r => Some((host, Some(r.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((h, p)) if !p.contains(':') => Some((h, Some(p))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(ip: &'static str) -> impl Fn(&str) -> std::io::Result<Vec<SocketAddr>> {
        move |_| Ok(vec![SocketAddr::new(ip.parse().expect("ip"), 443)])
    }

    #[test]
    fn loopback_targets_are_accepted() {
        let t =
            Target::parse_with("https://127.0.0.1:8443", false, &resolver("10.0.0.1")).expect("ok");
        assert_eq!(t.base_url, "https://127.0.0.1:8443");
        assert_eq!(t.address, "127.0.0.1:8443");
        let t =
            Target::parse_with("https://localhost:9/", false, &resolver("127.0.0.1")).expect("ok");
        assert_eq!(t.address, "localhost:9");
        let t = Target::parse_with("https://[::1]:8443", false, &resolver("10.0.0.1")).expect("ok");
        assert_eq!(t.address, "[::1]:8443");
        let t = Target::parse_with("https://smdp.test", false, &resolver("127.0.0.2")).expect("ok");
        assert_eq!(t.address, "smdp.test:443");
    }

    #[test]
    fn remote_targets_need_the_flag() {
        for url in ["https://10.1.2.3:8443", "https://smdp.example.com"] {
            let e = Target::parse_with(url, false, &resolver("192.0.2.1")).expect_err(url);
            assert!(e.to_string().contains("--allow-remote"), "{e}");
            let t = Target::parse_with(url, true, &resolver("192.0.2.1")).expect(url);
            assert!(!t.loopback);
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for url in [
            "",
            "http://127.0.0.1:8443",
            "127.0.0.1:8443",
            "https://",
            "https://127.0.0.1:0",
            "https://127.0.0.1:70000",
            "https://127.0.0.1:port",
            "https://127.0.0.1:8443/gsma",
            "https://user@127.0.0.1",
            "https://127.0.0.1:8443?x=1",
            "https://[::1",
            "https://a:b:c",
            "https://bad_host!:1",
            "https://\u{e9}.test",
        ] {
            let e = Target::parse_with(url, true, &resolver("127.0.0.1")).expect_err(url);
            assert!(e.to_string().starts_with("--target"), "{url}: {e}");
        }
    }

    #[test]
    fn an_unresolvable_host_is_an_error() {
        let e = Target::parse_with("https://nowhere.invalid", false, &|_| {
            Err(std::io::Error::other("no such host"))
        })
        .expect_err("resolved");
        assert!(e.to_string().contains("cannot resolve"), "{e}");
    }
}
