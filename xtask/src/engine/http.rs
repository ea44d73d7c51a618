//! The one HTTP question the xtask asks (is a registry there, is a container
//! healthy): the status code of a GET, over plain HTTP/1.0 on a socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The longest status line we read: far more than `HTTP/1.1 503 Service Unavailable`.
const MAX_STATUS_LINE: u64 = 8 * 1024;

/// The status code of `GET path` at `addr` (sent with `Host: host`).
pub fn get_status(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // One write: a request split over segments can meet a server that
    // answers and closes after the first one.
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
    // The whole status line, however many segments it arrives in.
    let mut line = String::new();
    BufReader::new(stream.take(MAX_STATUS_LINE)).read_line(&mut line)?;
    parse_status_line(&line).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {:?}", line.trim_end().chars().take(80).collect::<String>()),
        )
    })
}

/// `HTTP/1.x NNN reason` → NNN.
fn parse_status_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let code = rest.split_whitespace().nth(1)?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers each connection with `answers[i]`, written in
    /// the given pieces with a pause between them.
    fn serve(answers: Vec<Vec<&'static [u8]>>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for pieces in answers {
                let (mut s, _) = listener.accept().unwrap();
                // The whole request, so closing doesn't reset the connection.
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "the request ended early");
                    request.extend_from_slice(&buf[..n]);
                }
                for piece in pieces {
                    s.write_all(piece).unwrap();
                    s.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        (addr, server)
    }

    #[test]
    fn reads_the_status_code() {
        let (addr, server) =
            serve(vec![vec![b"HTTP/1.0 503 Service Unavailable\r\n\r\n{}"], vec![b"SSH-2.0-OpenSSH\r\n"]]);
        assert_eq!(get_status(addr, "127.0.0.1", "/healthz").unwrap(), 503);
        assert!(get_status(addr, "127.0.0.1", "/").unwrap_err().to_string().contains("not an HTTP answer"));
        server.join().unwrap();
    }

    #[test]
    fn a_status_line_split_over_segments_is_read_whole() {
        // A server (or proxy) that sends its status line in pieces, behind a
        // long header-like preamble: the code arrives after the first read.
        let (addr, server) = serve(vec![vec![b"HTTP/1.1 ", b"2", b"00 OK\r\nContent-Length: 0\r\n\r\n"]]);
        assert_eq!(get_status(addr, "127.0.0.1", "/v2/").unwrap(), 200);
        server.join().unwrap();
    }

    #[test]
    fn status_lines_parse_strictly() {
        assert_eq!(parse_status_line("HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(parse_status_line("HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status_line("HTTP/2 200\r\n"), None);
        assert_eq!(parse_status_line(""), None);
    }
}
