//! The client's address: the TCP peer, or, behind a trusted proxy, the
//! address the proxies say they received the request from.
//!
//! A proxy such as nginx *appends* the address it received the request
//! from to `X-Forwarded-For`, after whatever the client sent. So only the
//! entries on the right, written by proxies we trust, are believed: the
//! header is read from the right, trusted proxies are skipped, and the
//! first other entry is the client. Anything to its left was written by the
//! client (or a proxy we do not know) and could say anything. An entry that
//! is not an IP address ends the search at the last trusted hop, which is
//! then taken as the client: it is the last address we know to be true.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Whom `X-Forwarded-For` is believed from.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyTrust {
    /// `server.trust_proxy`: without it the header is ignored.
    enabled: bool,
    /// `server.trusted_proxies`.
    proxies: Vec<IpNet>,
}

/// At most this many entries are read from the right; a chain of trusted
/// proxies longer than this ends at the last one read.
const MAX_HOPS: usize = 32;

impl ProxyTrust {
    pub(crate) fn new(enabled: bool, proxies: Vec<IpNet>) -> Self {
        Self { enabled, proxies }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` carrying these
    /// `X-Forwarded-For` header values (in the order received; `None` for a
    /// value that is not visible ASCII).
    pub(crate) fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = Option<&'a str>>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.enabled || !self.trusts(peer) {
            return peer;
        }
        let entries = forwarded
            .rev()
            .flat_map(|value| match value {
                Some(value) => value.rsplit(',').map(parse_entry).collect::<Vec<_>>(),
                None => vec![None],
            })
            .take(MAX_HOPS);
        let mut client = peer;
        for entry in entries {
            let Some(ip) = entry else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`) or in brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or_default()
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(canonical(ip))
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is that IPv4
/// address, for trust as for counting.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The request's client address as stored in sessions and events: always
/// an address keyward has parsed, never the header's own text.
pub(crate) fn client_ip(req: &HttpRequest, trust: &ProxyTrust) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| v.to_str().ok());
    let values: Vec<Option<&str>> = forwarded.collect();
    Some(trust.client(peer, values.into_iter()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(nets: &[&str]) -> ProxyTrust {
        ProxyTrust::new(true, nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn client(trust: &ProxyTrust, peer: &str, headers: &[&str]) -> String {
        trust
            .client(peer.parse().unwrap(), headers.iter().map(|h| Some(*h)))
            .to_string()
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let t = trust(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client(&t, "127.0.0.1", &["198.51.100.1, 203.0.113.7"]),
            "203.0.113.7"
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["198.51.100.1, 203.0.113.7, 10.0.0.2"]),
            "203.0.113.7"
        );
        // Several header lines read as one list, in order.
        assert_eq!(
            client(
                &t,
                "127.0.0.1",
                &["198.51.100.1", "203.0.113.7", "10.0.0.2"]
            ),
            "203.0.113.7"
        );
        // Every entry trusted: the leftmost is as far as we can see.
        assert_eq!(client(&t, "127.0.0.1", &["10.0.0.3, 10.0.0.2"]), "10.0.0.3");
        assert_eq!(client(&t, "127.0.0.1", &[]), "127.0.0.1");
    }

    #[test]
    fn garbage_ends_the_search_at_the_last_trusted_hop() {
        let t = trust(&["127.0.0.1/32", "10.0.0.0/8"]);
        for header in [
            "203.0.113.9, unknown, 10.0.0.2",
            "203.0.113.9,,10.0.0.2",
            "203.0.113.9, 999.1.1.1, 10.0.0.2",
            "203.0.113.9, 203.0.113.10/24, 10.0.0.2",
        ] {
            assert_eq!(client(&t, "127.0.0.1", &[header]), "10.0.0.2", "{header}");
        }
        assert_eq!(client(&t, "127.0.0.1", &["nonsense"]), "127.0.0.1");
        let unreadable = t.client(
            "127.0.0.1".parse().unwrap(),
            [Some("203.0.113.9"), None].into_iter(),
        );
        assert_eq!(unreadable.to_string(), "127.0.0.1");
    }

    #[test]
    fn ipv6_ports_brackets_and_mapped_addresses() {
        let t = trust(&["127.0.0.1/32", "2001:db8:ffff::/48"]);
        assert_eq!(
            client(&t, "::ffff:127.0.0.1", &["2001:db8:1::1, 2001:db8:ffff::2"]),
            "2001:db8:1::1"
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["[2001:db8:1::1]:443"]),
            "2001:db8:1::1"
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["[2001:db8:1::1]"]),
            "2001:db8:1::1"
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["203.0.113.7:8080"]),
            "203.0.113.7"
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["::ffff:203.0.113.7"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer_with_trust_proxy_on() {
        let t = trust(&["10.0.0.0/8"]);
        assert_eq!(client(&t, "127.0.0.1", &["203.0.113.7"]), "127.0.0.1");
        let off = ProxyTrust::new(false, vec!["127.0.0.1/32".parse().unwrap()]);
        assert_eq!(client(&off, "127.0.0.1", &["203.0.113.7"]), "127.0.0.1");
    }
}
