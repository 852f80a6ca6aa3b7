//! A minimal HTTP/1.1 keep-alive response reader over raw TCP, for the
//! load the demo simulates and the benchmark harness drives: it costs little
//! CPU, so on a small machine more of it goes to the server being measured.

use anyhow::{anyhow, Context, Result};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
pub async fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> Result<u16> {
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(anyhow!("server closed the connection"));
        }
        filled += n;
        if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("non-UTF-8 response head")?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("bad status line"))?;
            let len: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            if total > buf.len() {
                return Err(anyhow!("response larger than the read buffer"));
            }
            while filled < total {
                let n = s.read(&mut buf[filled..]).await?;
                if n == 0 {
                    return Err(anyhow!("server closed the connection mid-body"));
                }
                filled += n;
            }
            return Ok(status);
        }
    }
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}
