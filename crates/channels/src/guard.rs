//! SSRF guard for every host or URL a tenant can set (SMTP
//! relay, webhook and callback URLs): only http(s), and never an address on
//! loopback, private, link-local (cloud metadata), CGNAT, multicast or other
//! non-public ranges, including those ranges hidden inside IPv6 (mapped,
//! compatible, NAT64, 6to4) and in legacy IPv4 spellings (`127.1`,
//! `0x7f000001`, `2130706433`). Host names are resolved and every address
//! checked; callers should connect to the returned addresses so a DNS
//! rebinding between check and connect cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        (0, _) => "a \"this network\" address (0.0.0.0/8)",
        (10, _) => "a private network address",
        (100, 64..=127) => "a carrier-grade NAT address (100.64.0.0/10)",
        (127, _) => "a loopback address",
        (169, 254) => "a link-local address (cloud metadata lives here)",
        (172, 16..=31) => "a private network address",
        (192, 168) => "a private network address",
        (192, 0) if c == 0 => "an IETF protocol address (192.0.0.0/24)",
        (198, 18..=19) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, _) => "a multicast address",
        (240..=255, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    let seg = ip.segments();
    // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d.
    if let Some(v4) = ip.to_ipv4() {
        return blocked_v4(v4);
    }
    // NAT64 64:ff9b::/96 carries an IPv4 address in its last 32 bits.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return blocked_v4(v4);
    }
    // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        if let Some(why) = blocked_v4(v4) {
            return Some(why);
        }
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => "a private network address (fc00::/7)",
        s if s & 0xffc0 == 0xfe80 => "a link-local address (fe80::/10)",
        s if s & 0xffc0 == 0xfec0 => "a site-local address (fec0::/10)",
        s if s & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

/// Why `ip` is not a public address, or None when it is.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn reject(host: &str, why: &str) -> String {
    format!("`{host}` points to {why}; use the provider's public host name")
}

/// The numeric IPv4 spellings `inet_aton` accepts (and so getaddrinfo and
/// many HTTP clients): 1 to 4 parts, each decimal, octal (`0…`) or hex
/// (`0x…`), the last filling the remaining bytes.
fn legacy_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.strip_suffix('.').unwrap_or(host).split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 64 && *last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

/// An IP written literally in `host` (bracketed IPv6, any IPv4 spelling).
fn literal_ip(host: &str) -> Option<IpAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    // Drop an IPv6 zone id (fe80::1%eth0).
    let h = h.split('%').next().unwrap_or(h);
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    legacy_ipv4(h).map(IpAddr::V4)
}

/// Names that resolve to this machine or an internal zone by convention.
fn internal_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".internal")
        || h.ends_with(".local")
        || h == "metadata"
        || h.ends_with(".metadata")
}

fn check_literal(host: &str, allow_private: bool) -> Result<Option<IpAddr>, String> {
    if host.is_empty() {
        return Err("the host name is empty".to_string());
    }
    if allow_private {
        return Ok(literal_ip(host));
    }
    if internal_name(host) {
        return Err(reject(host, "an internal host name"));
    }
    match literal_ip(host) {
        Some(ip) => match blocked_reason(ip) {
            Some(why) => Err(reject(host, why)),
            None => Ok(Some(ip)),
        },
        None => Ok(None),
    }
}

/// Resolves `host` and checks every address. Returns the checked addresses
/// (connect to these, not to the name again). `allow_private` is for
/// self-hosters whose relay is on their own network, and for tests.
pub async fn check_host(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim();
    if let Some(ip) = check_literal(host, allow_private)? {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("`{host}` cannot be resolved: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("`{host}` has no addresses"));
    }
    if !allow_private {
        // Any bad address rejects the name: a resolver may hand out the
        // private one on the next lookup.
        if let Some(why) = addrs.iter().find_map(|a| blocked_reason(a.ip())) {
            return Err(reject(host, why));
        }
    }
    Ok(addrs)
}

/// Scheme, host and port of an http(s) URL, after the syntactic checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTarget {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

fn split_url(url: &str) -> Result<UrlTarget, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an absolute http(s) URL"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        other => {
            return Err(format!(
                "the `{other}:` scheme is not allowed; use an https:// URL"
            ))
        }
    };
    let authority = &rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())];
    // user:pass@host: the host is after the last '@'.
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let end = stripped
            .find(']')
            .ok_or_else(|| format!("`{url}` has an unclosed IPv6 address"))?;
        let after = &stripped[end + 1..];
        (format!("[{}]", &stripped[..end]), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse()
            .map_err(|_| format!("`{url}` has an invalid port"))?,
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(UrlTarget {
        https,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Syntactic check of a tenant-set URL: http(s) only, and no literal or
/// conventionally internal host. Does not resolve: use [`check_url_resolved`]
/// before connecting.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let t = split_url(url)?;
    check_literal(&t.host, allow_private).map(|_| ())
}

/// [`check_url`] plus resolution of the host ([`check_host`]).
pub async fn check_url_resolved(url: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let t = split_url(url)?;
    check_host(&t.host, t.port, allow_private).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INTERNAL_URLS: &[&str] = &[
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/admin",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254.:80/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://10.255.255.255/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://100.127.255.255/",
        "http://0.0.0.0/",
        "http://0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://198.18.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[fc00::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fe80::1]/",
        "http://[ff02::1]/",
        "https://user:pass@127.0.0.1/",
        "https://good.example.com@127.0.0.1/",
        "http://printer.local/",
    ];

    #[test]
    fn internal_urls_are_rejected() {
        assert!(INTERNAL_URLS.len() >= 30);
        for url in INTERNAL_URLS {
            let err = check_url(url, false).expect_err(url);
            assert!(
                err.contains("use the provider's public host name"),
                "{url}: {err}"
            );
            // The self-hosting escape hatch lets them through.
            assert!(check_url(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn schemes_and_malformed_urls_are_rejected() {
        for url in [
            "file:///etc/passwd",
            "gopher://127.0.0.1:25/",
            "ftp://example.com/",
            "dict://example.com:11211/",
            "javascript:alert(1)",
            "example.com/path",
            "http:///nohost",
            "http://example.com:99999/",
            "http://[::1/",
        ] {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_err(), "{url}");
        }
        assert!(check_url("file:///etc/passwd", false)
            .unwrap_err()
            .contains("scheme"));
    }

    #[test]
    fn public_urls_pass() {
        for url in [
            "https://api.twilio.com/2010-04-01",
            "https://hooks.example.com:8443/x?y=1",
            "http://93.184.215.14/",
            "https://[2606:4700::1111]/",
            "https://8.8.8.8/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://192.169.0.1/",
        ] {
            assert_eq!(check_url(url, false), Ok(()), "{url}");
        }
    }

    #[tokio::test]
    async fn resolved_names_are_checked() {
        // Resolves without network (hosts file / literal), must be refused.
        for host in [
            "127.0.0.1",
            "::1",
            "[::ffff:127.0.0.1]",
            "169.254.169.254",
            "10.1.2.3",
            "0x7f.1",
        ] {
            let err = check_host(host, 25, false).await.expect_err(host);
            assert!(
                err.contains("private") || err.contains("loopback") || err.contains("link-local"),
                "{host}: {err}"
            );
        }
        // `localhost` is refused by name before any lookup.
        assert!(check_host("localhost", 25, false).await.is_err());
        // Allowed for self-hosting, returning the address to connect to.
        let addrs = check_host("127.0.0.1", 2525, true).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(
            check_url_resolved("https://8.8.8.8/", false).await.unwrap(),
            vec!["8.8.8.8:443".parse().unwrap()]
        );
        assert!(check_url_resolved("http://[::1]:8080/", false)
            .await
            .is_err());
    }

    #[test]
    fn legacy_ipv4_forms() {
        assert_eq!(legacy_ipv4("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(legacy_ipv4("2130706433"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            legacy_ipv4("0x7f.0x0.0.01"),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(
            legacy_ipv4("10.1.65535"),
            Some(Ipv4Addr::new(10, 1, 255, 255))
        );
        assert_eq!(legacy_ipv4("256.1.1.1"), None);
        assert_eq!(legacy_ipv4("1.2.3.4.5"), None);
        assert_eq!(legacy_ipv4("example.com"), None);
        assert_eq!(legacy_ipv4("4294967296"), None);
    }

    proptest! {
        #[test]
        fn never_panics(url in "\\PC{0,60}") {
            let _ = check_url(&url, false);
            let _ = legacy_ipv4(&url);
        }

        #[test]
        fn every_loopback_and_private_v4_is_blocked(a in 0u8..=255, b in 0u8..=255, c in 0u8..=255) {
            for ip in [Ipv4Addr::new(127, a, b, c), Ipv4Addr::new(10, a, b, c), Ipv4Addr::new(192, 168, a, b), Ipv4Addr::new(169, 254, a, b)] {
                prop_assert!(blocked_reason(IpAddr::V4(ip)).is_some());
                prop_assert!(blocked_reason(IpAddr::V6(ip.to_ipv6_mapped())).is_some());
            }
        }
    }
}
