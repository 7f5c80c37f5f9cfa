//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) serving on a free `127.0.0.1` port, with its
//! storage in a fresh temporary folder, stopped and removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's package installs the registry.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry; killed, and its storage removed, on drop.
pub struct TestRegistry {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl TestRegistry {
    /// Starts a registry, or [`crate::skip`]s `what` (a failure under CI)
    /// and gives `None` when `/usr/bin/docker-registry` is missing.
    /// Panics when it does not answer `/v2/` within 10 seconds.
    #[track_caller]
    pub fn start(what: &str) -> Option<TestRegistry> {
        if !Path::new(BINARY).is_file() {
            crate::skip(
                what,
                &format!("`{BINARY}` is missing (apt-get install docker-registry)"),
            );
            return None;
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-registry-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).expect("registry temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: test-only-secret\n",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = TestRegistry { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !registry.answers() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// Stops the registry (its storage stays): the port refuses
    /// connections until [`TestRegistry::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same port with the same storage.
    /// Panics when it does not answer `/v2/` within 10 seconds (another
    /// process may have taken the port meanwhile).
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        self.child = Command::new(BINARY)
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {} after a restart",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The registry's storage folder (`rootdirectory`).
    pub fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The file that holds blob `sha256:HEX` in the registry's storage
    /// (to tamper with it: the registry does not check digests on reads).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// Whether `GET /v2/` answers 200.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
