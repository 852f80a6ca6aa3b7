//! Compressed intake bodies: `Content-Encoding: gzip` and `deflate` on the
//! public intake endpoints (RudderStack's SDKs gzip every batch by default).
//! The body is inflated as a stream into a buffer that stops one byte past
//! the endpoint's own limit, so the limits apply to what was sent once
//! decompressed and a zip bomb costs at most that buffer, never its
//! inflated size. The encoded body itself is bounded by the server's body
//! limit before it gets here.

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
// The `bufread` decoders read the body's bytes in place; the `read` ones
// would copy them through a 32 KB buffer of their own per request.
use flate2::bufread::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use std::io::Read;

/// More stacked codings than any client sends: refused, so a request
/// cannot make us run a decoder per list item.
const MAX_CODINGS: usize = 2;

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A coding other than gzip, deflate and identity (its name, clipped).
    Unsupported(String),
    /// Over `limit` bytes once decompressed.
    TooLarge { limit: usize },
    /// Not a valid stream of the coding it names.
    Corrupt { coding: &'static str, why: String },
}

/// The body as the sender meant it: decoded by every coding in the
/// `Content-Encoding` header (last applied, first undone), at most `limit`
/// bytes when a coding was applied. Without one the body is returned as it
/// is; the caller checks its own limits on it, as before.
pub fn decode(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let mut codings = Vec::new();
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let v = v
            .to_str()
            .map_err(|_| DecodeError::Unsupported("(not text)".into()))?;
        for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = c.to_ascii_lowercase();
            match c.as_str() {
                "identity" => {}
                "gzip" | "x-gzip" => codings.push(Coding::Gzip),
                "deflate" => codings.push(Coding::Deflate),
                _ => return Err(DecodeError::Unsupported(c.chars().take(32).collect())),
            }
        }
    }
    if codings.len() > MAX_CODINGS {
        return Err(DecodeError::Unsupported(format!(
            "{} stacked codings",
            codings.len()
        )));
    }
    let mut out = body;
    for c in codings.into_iter().rev() {
        out = inflate(c, &out, limit)?;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Coding {
    Gzip,
    Deflate,
}

/// One coding undone into at most `limit` bytes.
fn inflate(c: Coding, data: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    // Reading one byte past the limit is how an over-limit body is told
    // from one exactly at it, without inflating any further.
    let cap = limit as u64 + 1;
    let mut out = Vec::new();
    let (name, r) = match c {
        Coding::Gzip => (
            "gzip",
            MultiGzDecoder::new(data).take(cap).read_to_end(&mut out),
        ),
        // HTTP's `deflate` is a zlib stream (RFC 9110), but some clients
        // send raw deflate; the zlib header says which it is.
        Coding::Deflate if is_zlib(data) => (
            "deflate",
            ZlibDecoder::new(data).take(cap).read_to_end(&mut out),
        ),
        Coding::Deflate => (
            "deflate",
            DeflateDecoder::new(data).take(cap).read_to_end(&mut out),
        ),
    };
    r.map_err(|e| DecodeError::Corrupt {
        coding: name,
        why: e.to_string(),
    })?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// A zlib header (RFC 1950): method 8 (deflate), window at most 32 KB, and
/// the check bits that make the first two bytes a multiple of 31.
fn is_zlib(d: &[u8]) -> bool {
    match d {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(enc).unwrap(),
        );
        h
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_round_trip() {
        let body = br#"{"batch":[{"type":"track"}]}"#;
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(body).unwrap();
        let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(body).unwrap();
        for (enc, data) in [
            ("gzip", gzip(body)),
            ("GZip", gzip(body)),
            ("x-gzip", gzip(body)),
            ("deflate", z.finish().unwrap()),
            ("deflate", d.finish().unwrap()),
            ("identity", body.to_vec()),
            ("gzip, identity", gzip(body)),
            ("gzip, gzip", gzip(&gzip(body))),
        ] {
            let out = decode(&headers(enc), Bytes::from(data), 1024).expect(enc);
            assert_eq!(&out[..], body, "{enc}");
        }
        // No header: the bytes as they are, whatever their size.
        let plain = Bytes::from(vec![b'x'; 4096]);
        assert_eq!(decode(&HeaderMap::new(), plain.clone(), 10), Ok(plain));
    }

    #[test]
    fn the_limit_applies_to_the_decompressed_body_and_stops_inflating() {
        // 64 MB of zeros is about 64 KB of gzip.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 * 1024, "{}", bomb.len());
        assert_eq!(
            decode(&headers("gzip"), Bytes::from(bomb), 1000),
            Err(DecodeError::TooLarge { limit: 1000 })
        );
        // Exactly at the limit is fine; one byte more is not.
        let at = gzip(&[b'a'; 1000]);
        assert_eq!(
            decode(&headers("gzip"), Bytes::from(at), 1000).map(|b| b.len()),
            Ok(1000)
        );
        let over = gzip(&[b'a'; 1001]);
        assert_eq!(
            decode(&headers("gzip"), Bytes::from(over), 1000),
            Err(DecodeError::TooLarge { limit: 1000 })
        );
        // A bomb inside a bomb is stopped at the first layer past the limit.
        let double = gzip(&gzip(&vec![0u8; 16 << 20]));
        assert_eq!(
            decode(&headers("gzip, gzip"), Bytes::from(double), 1000),
            Err(DecodeError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn unknown_codings_and_corrupt_streams_are_refused() {
        let b = || Bytes::from_static(b"{}");
        assert_eq!(
            decode(&headers("br"), b(), 10),
            Err(DecodeError::Unsupported("br".into()))
        );
        assert_eq!(
            decode(&headers("gzip, zstd"), b(), 10),
            Err(DecodeError::Unsupported("zstd".into()))
        );
        assert!(matches!(
            decode(&headers("gzip, gzip, gzip"), b(), 10),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&headers("gzip"), b(), 10),
            Err(DecodeError::Corrupt { coding: "gzip", .. })
        ));
        let mut truncated = gzip(&[b'a'; 100]);
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            decode(&headers("gzip"), Bytes::from(truncated), 1000),
            Err(DecodeError::Corrupt { .. })
        ));
    }
}
