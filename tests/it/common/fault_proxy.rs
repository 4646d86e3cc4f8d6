//! A fault-injecting HTTP proxy for registry tests: it sits between bootseal and a real
//! plain-HTTP `docker-registry` and, by rules matched on method and path, answers with an error
//! status (optionally with `Retry-After` and a registry error body), cuts a response body
//! half-way, or stalls half-way through a body. Everything else is forwarded unchanged (one
//! request per connection, `Connection: close` both ways). It records every fault it injected,
//! so a test can assert that each scenario was actually exercised.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (the request body is read and dropped), a registry-style JSON
    /// error body, and `Retry-After` when given.
    Status {
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    /// Forward, then close the connection after half of the response body.
    CutBody,
    /// Forward, then stop sending after half of the response body for this long.
    Stall(Duration),
    /// Answer with this status, content type and body instead of the registry: an endpoint
    /// the test registry does not serve (the OCI 1.1 referrers API), simulated.
    Respond {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

/// A fault for requests whose method equals `method` and whose path contains `path`, applied to
/// the first `times` of them (`usize::MAX`: all).
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub fault: Fault,
    pub times: usize,
}

impl Rule {
    pub fn new(method: &'static str, path: &'static str, fault: Fault, times: usize) -> Rule {
        Rule {
            method,
            path,
            fault,
            times,
        }
    }
}

pub fn status(status: u16, retry_after: Option<u64>, message: &str) -> Fault {
    Fault::Status {
        status,
        retry_after,
        message: message.into(),
    }
}

struct State {
    rules: Vec<Rule>,
    injected: Vec<String>,
    requests: Vec<String>,
}

/// A running proxy; stops accepting on drop.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`127.0.0.1:PORT`, plain HTTP).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State {
            rules: Vec::new(),
            injected: Vec::new(),
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stp, up) = (state.clone(), stop.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, up) = (st.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &st);
                });
            }
        });
        FaultProxy { host, state, stop }
    }

    /// Replaces the rules (and keeps what was injected so far).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules;
    }

    /// `"STATUS METHOD PATH"`, `"cut METHOD PATH"` or `"stall METHOD PATH"` per injected fault.
    pub fn injected(&self) -> Vec<String> {
        self.state.lock().unwrap().injected.clone()
    }

    /// `"METHOD PATH"` of every request seen (`"METHOD PATH range"` with a Range header,
    /// `"TLS handshake"` for a refused HTTPS attempt).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_log(&self) {
        let mut s = self.state.lock().unwrap();
        s.injected.clear();
        s.requests.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.host);
    }
}

fn handle(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    // A TLS ClientHello (a client probing for HTTPS): refuse it as Go's net/http does, at once.
    if reader.fill_buf()?.first() == Some(&0x16) {
        state.lock().unwrap().requests.push("TLS handshake".into());
        let mut w = client.try_clone()?;
        w.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let mut parts = request_line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let fault = {
        let mut s = state.lock().unwrap();
        let range = if header(&headers, "range").is_some() {
            " range"
        } else {
            ""
        };
        s.requests.push(format!("{method} {path}{range}"));
        let hit = s
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(r.path));
        let fault = hit.map(|r| {
            r.times = r.times.saturating_sub(1);
            r.fault.clone()
        });
        if let Some(f) = &fault {
            let tag = match f {
                Fault::Status { status, .. } => status.to_string(),
                Fault::CutBody => "cut".into(),
                Fault::Stall(_) => "stall".into(),
                Fault::Respond { status, .. } => format!("respond {status}"),
            };
            s.injected.push(format!("{tag} {method} {path}"));
        }
        fault
    };
    let mut client_w = client.try_clone()?;
    if let Some(Fault::Status {
        status,
        retry_after,
        message,
    }) = &fault
    {
        drain_body(&mut reader, &headers)?;
        let body = format!(r#"{{"errors":[{{"code":"INJECTED","message":"{message}"}}]}}"#);
        let mut resp = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(s) = retry_after {
            resp.push_str(&format!("Retry-After: {s}\r\n"));
        }
        resp.push_str("\r\n");
        client_w.write_all(resp.as_bytes())?;
        if method != "HEAD" {
            client_w.write_all(body.as_bytes())?;
        }
        client_w.flush()?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }

    if let Some(Fault::Respond {
        status,
        content_type,
        body,
    }) = &fault
    {
        drain_body(&mut reader, &headers)?;
        let resp = format!(
            "HTTP/1.1 {status} Simulated\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        client_w.write_all(resp.as_bytes())?;
        if method != "HEAD" {
            client_w.write_all(body)?;
        }
        client_w.flush()?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }

    // Forward: the head with Connection: close, then the body as it comes.
    let mut up = TcpStream::connect(upstream)?;
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if k != "connection" && k != "keep-alive" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str("connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    let mut up_w = up.try_clone()?;
    let request_body = std::thread::spawn(move || {
        let _ = copy_body(&mut reader, &mut up_w, &headers);
    });

    let mut up_r = BufReader::new(up.try_clone()?);
    let mut resp_head = Vec::new();
    loop {
        let mut line = Vec::new();
        if up_r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let end = line == b"\r\n" || line == b"\n";
        let lower = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if !end && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        if end {
            resp_head.extend_from_slice(b"Connection: close\r\n");
        }
        resp_head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let length: Option<u64> = String::from_utf8_lossy(&resp_head).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    client_w.write_all(&resp_head)?;
    let limit = match (&fault, length) {
        (Some(Fault::CutBody | Fault::Stall(_)), Some(n)) if method != "HEAD" => Some(n / 2),
        _ => None,
    };
    match limit {
        Some(half) => {
            std::io::copy(&mut (&mut up_r).take(half), &mut client_w)?;
            client_w.flush()?;
            if let Some(Fault::Stall(d)) = fault {
                std::thread::sleep(d);
            }
        }
        None => {
            std::io::copy(&mut up_r, &mut client_w)?;
        }
    }
    client_w.flush()?;
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = request_body.join();
    Ok(())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Copies a request body framed by Content-Length or chunked encoding.
fn copy_body(
    from: &mut BufReader<TcpStream>,
    to: &mut impl Write,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    if let Some(n) = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        std::io::copy(&mut from.take(n), to)?;
        return to.flush();
    }
    if header(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size_line = String::new();
            from.read_line(&mut size_line)?;
            to.write_all(size_line.as_bytes())?;
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .unwrap_or(0);
            std::io::copy(&mut from.take(size), to)?;
            let mut crlf = String::new();
            from.read_line(&mut crlf)?;
            to.write_all(crlf.as_bytes())?;
            if size == 0 {
                break;
            }
        }
    }
    to.flush()
}

fn drain_body(
    from: &mut BufReader<TcpStream>,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    copy_body(from, &mut std::io::sink(), headers)
}
