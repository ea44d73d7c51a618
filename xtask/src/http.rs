//! The one HTTP question the xtask asks (is a registry there, is a container
//! healthy): the status code of a GET, over plain HTTP/1.0 on a socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The status code of `GET path` at `addr` (sent with `Host: host`).
pub fn get_status(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // One write: a request split over segments can meet a server that
    // answers and closes after the first one.
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or("")),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_code() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for answer in [&b"HTTP/1.0 503 Service Unavailable\r\n\r\n{}"[..], b"SSH-2.0-OpenSSH\r\n"] {
                let (mut s, _) = listener.accept().unwrap();
                // The whole request, so closing doesn't reset the connection.
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "the request ended early");
                    request.extend_from_slice(&buf[..n]);
                }
                s.write_all(answer).unwrap();
            }
        });
        assert_eq!(get_status(addr, "127.0.0.1", "/healthz").unwrap(), 503);
        assert!(get_status(addr, "127.0.0.1", "/").unwrap_err().to_string().contains("not an HTTP answer"));
        server.join().unwrap();
    }
}
