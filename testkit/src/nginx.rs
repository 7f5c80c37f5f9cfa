//! A real static HTTP server for tests: Debian's `nginx` serving a given
//! folder on a free `127.0.0.1` port, as one foreground process with its
//! own configuration, prefix, temporary folders and logs in a fresh
//! temporary folder; killed, and that folder removed, on drop.
//!
//! Static files get nginx's default `ETag` (`"<mtime hex>-<size hex>"`)
//! and conditional requests are answered 304. The access log holds one line
//! per request, `METHOD URI STATUS BYTES` ([`TestNginx::access_log`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's package installs nginx.
pub const BINARY: &str = "/usr/sbin/nginx";

/// A running nginx; killed, and its temporary folder removed, on drop.
pub struct TestNginx {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl TestNginx {
    /// Starts nginx serving `root`, or [`crate::skip`]s `what` (a failure
    /// under CI) and gives `None` when `/usr/sbin/nginx` is missing.
    /// Panics when it does not answer within 10 seconds.
    #[track_caller]
    pub fn start(what: &str, root: &Path) -> Option<TestNginx> {
        if !Path::new(BINARY).is_file() {
            crate::skip(
                what,
                &format!("`{BINARY}` is missing (apt-get install nginx)"),
            );
            return None;
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-nginx-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("temp")).expect("nginx temp dir");
        let root = std::fs::canonicalize(root).expect("the folder nginx serves");
        // Another process may take the free port between the probe and
        // nginx's bind: then nginx exits, and another port is tried.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config_path = dir.join("nginx.conf");
            std::fs::write(&config_path, config(&dir, &root, &addr)).expect("nginx config");
            let child = Command::new(BINARY)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx");
            let mut nginx = TestNginx {
                child,
                dir: dir.clone(),
                addr,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if nginx.answers() {
                    return Some(nginx);
                }
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    last_error = format!(
                        "nginx exited ({status}): {}",
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() >= deadline {
                    panic!("nginx did not answer on {}", nginx.addr);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Keep the folder for the next try: forget this instance
            // without its Drop removing it.
            let _ = nginx.child.wait();
            std::mem::forget(nginx);
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("nginx did not start: {last_error}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The access log so far, one `METHOD URI STATUS BYTES` line per
    /// request answered, oldest first.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits, up to 10 seconds, until the access log has at least `n`
    /// lines (nginx writes a line after the response is sent), then gives
    /// them all.
    pub fn wait_for_log_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.access_log();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `GET /.sluice-mark-N` (a fresh N) and waits, up to 30
    /// seconds, until its line is logged; the whole access log up to and
    /// including that line. nginx here is one process that logs each
    /// request when it answers it, so every request answered before the
    /// mark was sent is in the log above it: the lines between two marks
    /// are exactly the requests made between them. (A response the client
    /// abandoned midway is logged only when nginx notices, maybe later.)
    pub fn mark(&self) -> Vec<String> {
        static MARKS: AtomicUsize = AtomicUsize::new(0);
        let path = format!("/.sluice-mark-{}", MARKS.fetch_add(1, Ordering::Relaxed));
        let mut stream = TcpStream::connect(&self.addr).expect("connect to nginx");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send the mark");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.access_log();
            if let Some(i) = lines
                .iter()
                .position(|l| l.starts_with(&format!("GET {path} ")))
            {
                return lines[..=i].to_vec();
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not log the mark `{path}`"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `GET /` gets any HTTP answer (404 is fine: the root may
    /// hold no index page).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /.sluice-testkit-probe HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
    }
}

/// The configuration: one foreground process (so that killing it kills
/// nginx whole), everything under `dir`, `root` served on `addr`. The
/// readiness probe is not logged.
fn config(dir: &Path, root: &Path, addr: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    types {{ application/json json; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/temp/client;
    proxy_temp_path {d}/temp/proxy;
    fastcgi_temp_path {d}/temp/fastcgi;
    uwsgi_temp_path {d}/temp/uwsgi;
    scgi_temp_path {d}/temp/scgi;
    log_format sluice '$request_method $request_uri $status $body_bytes_sent';
    map $request_uri $loggable {{ /.sluice-testkit-probe 0; default 1; }}
    access_log {d}/access.log sluice if=$loggable;
    server {{
        listen {addr};
        root {root};
        etag on;
    }}
}}
"#,
        root = root.display()
    )
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: &str, path: &str, headers: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn serves_a_folder_with_etags_and_logs_each_request() {
        let root = std::env::temp_dir().join(format!("sluice-nginx-root-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.json"), b"{\"a\":1}").unwrap();
        let Some(nginx) = TestNginx::start("the nginx test server", &root) else {
            return;
        };
        let first = get(nginx.addr(), "/index.json", "");
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(first.ends_with("{\"a\":1}"), "{first}");
        let etag = first
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .expect("an ETag")
            .to_owned();
        let again = get(
            nginx.addr(),
            "/index.json",
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert!(again.starts_with("HTTP/1.1 304"), "{again}");
        let missing = get(nginx.addr(), "/nothing", "");
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let log = nginx.wait_for_log_lines(3);
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[..2], ["GET /index.json 200 7", "GET /index.json 304 0"]);
        // The 404 page's size names nginx's version: not compared.
        assert!(log[2].starts_with("GET /nothing 404 "), "{log:?}");
        let marked = nginx.mark();
        assert_eq!(marked.len(), 4, "{marked:?}");
        assert!(marked[3].starts_with("GET /.sluice-mark-"), "{marked:?}");
        get(nginx.addr(), "/index.json", "");
        let next = nginx.mark();
        assert_eq!(next.len(), 6, "{next:?}");
        assert_eq!(next[4], "GET /index.json 200 7");
        let addr = nginx.addr().to_owned();
        drop(nginx);
        assert!(TcpStream::connect(addr).is_err(), "nginx stopped on drop");
        let _ = std::fs::remove_dir_all(&root);
    }
}
