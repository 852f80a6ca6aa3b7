//! Rules applied at the HTTP edge, before a request reaches any business
//! rule: which post-sign-in redirect targets are safe to follow, and which
//! address a request really comes from when BOS runs behind reverse proxies.
//! Pure functions over strings and addresses, so the web layer only wires
//! them in and the tests here can throw every nasty input at them.

use std::fmt;
use std::net::IpAddr;

/// The redirect target for a `next` parameter, or `None` when it is not a
/// path on this site.
///
/// Browsers do not follow `next` as written: the URL parser drops tabs and
/// line breaks anywhere, trims leading control characters and spaces, and
/// reads `\` as `/` — so `/\t/evil.example` and `/\evil.example` both become
/// `//evil.example`, another host. Rather than predict every parser quirk,
/// this accepts only what no parser can read as anything but a path here:
/// a leading `/` not followed by `/`, and no control character or backslash
/// anywhere. Bytes outside visible ASCII (spaces, non-ASCII letters) are
/// percent-encoded so the result is always a valid `Location` header value
/// that means the same path.
pub fn safe_local_path(next: &str) -> Option<String> {
    let rest = next.strip_prefix('/')?;
    if rest.starts_with('/') {
        return None;
    }
    if next.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let mut out = String::with_capacity(next.len());
    for b in next.bytes() {
        if (0x21..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// A network given as an address and a prefix length: `10.0.0.0/8`,
/// `2001:db8::/32`, or a single address (`192.0.2.7` means `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network (e.g. 10.0.0.0/8)"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:192.0.2.7`) is the
/// IPv4 client: one address, one rate limit, one match rule.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed. Empty (the
/// default) believes nobody: the client is the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma- or space-separated list of addresses and networks; empty
    /// means none.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(IpNet::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted
    /// proxy, in which case `X-Forwarded-For` (every header value, in
    /// order) is walked from the right — the hop each trusted proxy
    /// appended — to the first address not trusted. Hops left of that were
    /// written by the client itself and could say anything, so they are
    /// never read. A hop that is not an address ends the walk at the
    /// trusted proxy before it (it cannot vouch for anything further).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_hop(hop) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`192.0.2.7:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<IpAddr>().ok().map(canonical);
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a browser does to a `Location` value before resolving it
    /// against the current page: drop tabs and line breaks, trim leading
    /// C0 controls and spaces, read backslashes as slashes. A target is
    /// same-origin when what remains is a path starting with exactly one
    /// slash.
    fn browser_stays_on_site(location: &str) -> bool {
        let cleaned: String = location
            .trim_start_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .map(|c| if c == '\\' { '/' } else { c })
            .collect();
        cleaned.starts_with('/') && !cleaned.starts_with("//")
    }

    #[test]
    fn local_paths_are_kept() {
        for p in [
            "/",
            "/customers",
            "/customers?q=ann&sort=name",
            "/leads/0190-abc#top",
            "/a/b/../c",
            "/%2F%2Fencoded-stays-a-path",
        ] {
            assert_eq!(safe_local_path(p).as_deref(), Some(p), "{p}");
        }
    }

    #[test]
    fn spaces_and_non_ascii_are_encoded_not_refused() {
        assert_eq!(
            safe_local_path("/customers?q=josé lee").as_deref(),
            Some("/customers?q=jos%C3%A9%20lee")
        );
    }

    #[test]
    fn every_way_off_site_is_refused() {
        for bad in [
            "",
            "customers",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\t\\evil.example",
            "/x\0y",
            "/x\u{7f}",
            "/x\u{85}y",
            " //evil.example",
            "\t//evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "data:text/html,hi",
            "///evil.example",
            "/x\\..\\..\\/evil",
        ] {
            assert_eq!(safe_local_path(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Whatever comes in, what goes out is a valid header value that a
        /// browser resolves to a path on this site.
        #[test]
        fn nothing_accepted_leaves_the_site(s in "\\PC{0,12}|[/\\\\\t\r\n \\x00%:a-z.]{0,12}") {
            if let Some(out) = safe_local_path(&s) {
                prop_assert!(out.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{out:?}");
                prop_assert!(browser_stays_on_site(&out), "{s:?} -> {out:?}");
                prop_assert!(browser_stays_on_site(&s), "accepted {s:?}, which a browser reads off-site");
            }
        }

        /// Ordinary paths pass through unchanged.
        #[test]
        fn ordinary_paths_pass(s in "/[a-z0-9][a-z0-9/?=&._~-]{0,30}") {
            prop_assert_eq!(safe_local_path(&s), Some(s.clone()));
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.200.3.4")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("::1")));
        let one = IpNet::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host.example",
            "10.0.0.0/x",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_list_parses_with_commas_or_spaces_and_reports_the_bad_entry() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1 ::1").unwrap();
        assert!(t.trusts(ip("127.0.0.1")) && t.trusts(ip("::1")) && t.trusts(ip("10.9.9.9")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let e = TrustedProxies::parse("10.0.0.0/8, nope").unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("203.0.113.9"), ["1.2.3.4"]),
            ip("203.0.113.9")
        );
        let t = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), ["1.2.3.4, 10.0.0.1"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client forged a first hop; the proxy appended the real one.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["6.6.6.6, 198.51.100.4"]),
            ip("198.51.100.4")
        );
        // Two trusted proxies in a row, across two header lines.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["6.6.6.6, 198.51.100.4", "10.0.0.2"]),
            ip("198.51.100.4")
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["198.51.100.4:5123"]),
            ip("198.51.100.4")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["[2001:db8::9]:443"]),
            ip("2001:db8::9")
        );
        // No header: the proxy itself is all we know.
        assert_eq!(t.client_ip(ip("10.0.0.1"), []), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["198.51.100.4, unknown"]),
            ip("10.0.0.1")
        );
        // Every hop trusted: the leftmost one.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["10.1.1.1, 10.2.2.2"]),
            ip("10.1.1.1")
        );
    }

    proptest! {
        /// Whatever a client writes into X-Forwarded-For, it cannot choose
        /// an address outside what the trusted proxy appended: the answer
        /// is the appended hop.
        #[test]
        fn forged_hops_left_of_the_proxys_change_nothing(forged in "[0-9a-f.:, \\[\\]]{0,40}", a in 1u8..=254, b in 1u8..=254) {
            let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
            let real = IpAddr::from([198, 51, a, b]);
            let header = format!("{forged}, {real}");
            prop_assert_eq!(t.client_ip(ip("10.0.0.1"), [header.as_str()]), real);
        }
    }
}
