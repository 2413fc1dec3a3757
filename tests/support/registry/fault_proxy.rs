//! A fault-injecting HTTP/1.1 proxy in front of a registry.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A fault to inject in front of the registry.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `500` instead of forwarding, for the first `times` matching requests.
    ServerError {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many requests fail.
        times: usize,
    },
    /// Forward only half of the request body, then close both connections, for the
    /// first `times` matching requests (a connection reset mid-upload).
    CutRequest {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many requests are cut.
        times: usize,
    },
    /// Forward only half of the response, then close, for the first `times` matching
    /// requests (a connection reset mid-download).
    CutResponse {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many responses are cut.
        times: usize,
    },
    /// Answer `500` once, to the matching request after the first `skip` ones (a
    /// failure in the middle of a chunked upload).
    ServerErrorAfter {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// Matching requests let through first.
        skip: usize,
    },
    /// Forward only half of the response, then keep the connection open without sending
    /// more until the client goes away, for the first matching request (a download
    /// stuck halfway, e.g. to kill the client during it).
    StallResponse {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
    },
    /// Forward the request with only half of its body, then keep both connections open
    /// without sending more until the client goes away, for the first matching request
    /// (an upload stuck halfway, e.g. to kill the client during it).
    StallRequest {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
    },
    /// Flip one byte in the middle of every matching response body.
    CorruptResponse {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
    },
}

/// A small HTTP/1.1 proxy on loopback that forwards to a registry (one request per
/// connection) and injects faults. Stops when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Per fault, in the order given: (matching requests seen, faults injected).
    pub fired: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`) with `faults`.
    pub fn start(upstream: &str, faults: Vec<Fault>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(Mutex::new(vec![(0usize, 0usize); faults.len()]));
        let faults = Arc::new(faults);
        let upstream = upstream.to_string();
        let thread = {
            let stop = stop.clone();
            let fired = fired.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (faults, fired, upstream) =
                                (faults.clone(), fired.clone(), upstream.clone());
                            std::thread::spawn(move || {
                                let _ = conn.set_nonblocking(false);
                                let _ = handle(conn, &upstream, &faults, &fired);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            fired,
            thread: Some(thread),
        }
    }

    /// How often fault number `i` was injected.
    pub fn fired(&self, i: usize) -> usize {
        self.fired.lock().unwrap()[i].1
    }

    /// How many requests fault number `i` matched (injected or let through).
    pub fn seen(&self, i: usize) -> usize {
        self.fired.lock().unwrap()[i].0
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(super) fn read_request(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok((head, body))
}

fn handle(
    mut conn: TcpStream,
    upstream: &str,
    faults: &[Fault],
    fired: &std::sync::Mutex<Vec<(usize, usize)>>,
) -> std::io::Result<()> {
    let (head, body) = read_request(&mut conn)?;
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    // Force one request per connection, so each request is judged on its own.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = format!("{}\r\nConnection: close\r\n\r\n", head.trim_end());
    let mut active = None;
    {
        let mut counts = fired.lock().unwrap();
        for (i, fault) in faults.iter().enumerate() {
            let (m, p, skip, times) = match fault {
                Fault::ServerError {
                    method,
                    path,
                    times,
                }
                | Fault::CutRequest {
                    method,
                    path,
                    times,
                }
                | Fault::CutResponse {
                    method,
                    path,
                    times,
                } => (method, path, 0, *times),
                Fault::ServerErrorAfter { method, path, skip } => (method, path, *skip, 1),
                Fault::StallResponse { method, path } | Fault::StallRequest { method, path } => {
                    (method, path, 0, 1)
                }
                Fault::CorruptResponse { method, path } => (method, path, 0, usize::MAX),
            };
            if *m != method || !path_matches(&path_only(&path), p) {
                continue;
            }
            // counts[i]: (matching requests seen, faults injected).
            counts[i].0 += 1;
            if counts[i].0 > skip && counts[i].1 < times {
                counts[i].1 += 1;
                active = Some(fault.clone());
                break;
            }
        }
    }
    if let Some(Fault::ServerError { .. } | Fault::ServerErrorAfter { .. }) = active {
        conn.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head.as_bytes())?;
    if let Some(Fault::CutRequest { .. }) = active {
        up.write_all(&body[..body.len() / 2])?;
        up.flush()?;
        std::thread::sleep(Duration::from_millis(100));
        let _ = up.shutdown(std::net::Shutdown::Both);
        let _ = conn.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    if let Some(Fault::StallRequest { .. }) = active {
        up.write_all(&body[..body.len() / 2])?;
        up.flush()?;
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        let _ = up.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    match active {
        Some(Fault::CutResponse { .. }) => {
            let cut = body_start + (response.len() - body_start) / 2;
            conn.write_all(&response[..cut])?;
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Fault::StallResponse { .. }) => {
            let cut = body_start + (response.len() - body_start) / 2;
            conn.write_all(&response[..cut])?;
            let mut rest = Vec::new();
            let _ = conn.read_to_end(&mut rest);
            return Ok(());
        }
        Some(Fault::CorruptResponse { .. }) if response.len() > body_start => {
            let mid = body_start + (response.len() - body_start) / 2;
            response[mid] ^= 0xff;
        }
        _ => {}
    }
    conn.write_all(&response)?;
    Ok(())
}

fn path_only(path: &str) -> String {
    path.split('?').next().unwrap_or("").to_string()
}

fn path_matches(path: &str, pattern: &str) -> bool {
    path.contains(pattern)
}
