//! A minimal blocking HTTP/1.1 client for tests: one request per connection, `Connection:
//! close`, chunked or sized bodies. Small enough to read in one sitting, and independent of
//! the hyper stack the code under test uses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked (but not decompressed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with `headers` to `addr` and reads the whole response.
///
/// # Errors
///
/// Any I/O error: connection refused, timeout (10 s), malformed response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header {trimmed:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if method == "HEAD" {
        // No body follows, whatever Content-Length says.
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| invalid(format!("bad chunk size {line:?}: {e}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `GET path` with `headers`.
///
/// # Errors
///
/// As [`request`].
pub fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    request(addr, "GET", path, headers)
}

/// Percent-encodes a query parameter value.
#[must_use]
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A request as [`CaptureServer`] received it.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// The request line, such as `POST /v1/metrics HTTP/1.1`.
    pub request_line: String,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`), as sent (still gzipped if it was).
    pub body: Vec<u8>,
    /// When the request had been read.
    pub at: std::time::Instant,
}

impl CapturedRequest {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body, gunzipped when it was sent with `Content-Encoding: gzip`.
    ///
    /// # Panics
    ///
    /// Panics when a gzipped body does not decompress.
    #[must_use]
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("a valid gzip body");
            out
        } else {
            self.body.clone()
        }
    }
}

/// What [`CaptureServer`] does with one connection.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Answers with this status (and a short text body).
    Status(u16),
    /// Answers with this status and `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Answers 200 with this body (an OTLP `ExportMetricsServiceResponse`, say).
    Body(Vec<u8>),
    /// Reads the request, then closes the connection without answering.
    Reset,
    /// Reads the request, then waits this long without answering, then closes.
    Hang(Duration),
}

/// A stand-in HTTP server on 127.0.0.1 (plain or TLS) that records every request and answers
/// as scripted, in order (200 once the script runs out). Stopped when dropped.
#[derive(Debug)]
pub struct CaptureServer {
    addr: SocketAddr,
    tls: bool,
    captured: std::sync::Arc<std::sync::Mutex<Vec<CapturedRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureServer {
    /// Starts the server on a free port; `statuses` are the answers to the first requests.
    ///
    /// # Panics
    ///
    /// Panics when no port can be bound on 127.0.0.1.
    #[must_use]
    pub fn start(statuses: &[u16]) -> Self {
        let script = statuses.iter().map(|&s| Answer::Status(s)).collect();
        Self::scripted(SocketAddr::from(([127, 0, 0, 1], 0)), script, None)
    }

    /// Starts the server on `addr` (a loopback address; port 0 for a free one), answering as
    /// `script` says, over TLS with the test certificate when `tls` is given.
    ///
    /// # Panics
    ///
    /// Panics when `addr` cannot be bound.
    #[must_use]
    pub fn scripted(
        addr: SocketAddr,
        script: Vec<Answer>,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(addr).expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("a bound address");
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut script: std::collections::VecDeque<Answer> = script.into();
        let is_tls = tls.is_some();
        let thread = {
            let (captured, stop) = (captured.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let answer = script.pop_front().unwrap_or(Answer::Status(200));
                    match &tls {
                        Some(config) => {
                            let Ok(connection) =
                                rustls::ServerConnection::new(std::sync::Arc::clone(config))
                            else {
                                continue;
                            };
                            let stream = rustls::StreamOwned::new(connection, stream);
                            serve_one(stream, &answer, &captured);
                        }
                        None => serve_one(stream, &answer, &captured),
                    }
                }
            })
        };
        Self {
            addr,
            tls: is_tls,
            captured,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://<addr>`, or `https://localhost:<port>` over TLS.
    #[must_use]
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.captured.lock().expect("not poisoned").clone()
    }
}

/// The test certificate's server configuration (`tests/fixtures/tls`), for
/// [`CaptureServer::scripted`].
///
/// # Panics
///
/// Panics when the fixtures cannot be read.
#[must_use]
pub fn test_tls_config() -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{dir}/server.pem"))
            .expect("the test certificate")
            .collect::<Result<_, _>>()
            .expect("valid PEM");
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).expect("the test key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default protocols")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a matching certificate and key");
    std::sync::Arc::new(config)
}

/// The test CA's certificate, in PEM: what a client must trust to reach the TLS server.
///
/// # Panics
///
/// Panics when the fixture cannot be read.
#[must_use]
pub fn test_ca_pem() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem")).expect("ca.pem")
}

fn serve_one<S: Read + Write>(
    stream: S,
    answer: &Answer,
    captured: &std::sync::Mutex<Vec<CapturedRequest>>,
) {
    // Recorded before the answer goes out, so that a client that has its answer always
    // finds its request recorded.
    let Ok((request, mut stream)) = read_request(stream) else {
        return;
    };
    captured.lock().expect("not poisoned").push(request);
    let response = match answer {
        Answer::Reset => return,
        Answer::Hang(how_long) => {
            std::thread::sleep(*how_long);
            return;
        }
        Answer::Status(200) => response(200, "", b"ok"),
        Answer::Status(status) => response(*status, "", b"refused by the test"),
        Answer::RetryAfter(status, seconds) => {
            response(*status, &format!("Retry-After: {seconds}\r\n"), b"later")
        }
        Answer::Body(body) => response(200, "Content-Type: application/x-protobuf\r\n", body),
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
}

fn response(status: u16, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request<S: Read>(stream: S) -> std::io::Result<(CapturedRequest, S)> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request = CapturedRequest {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body,
        at: std::time::Instant::now(),
    };
    Ok((request, reader.into_inner()))
}
