//! Network namespaces, processes and folders for the tests that run the
//! proxy as root inside namespaces they create, each removed when dropped.
//! Included with `#[path = "support/netns.rs"] mod netns;`; each test uses
//! part of it.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `Err(why)` when the effective user is not root.
pub fn require_root() -> Result<(), String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|_| "no /proc/self/status (not Linux)".to_owned())?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!("not root (effective uid {euid})"));
    }
    Ok(())
}

/// `Err(why)` naming the first of `tools` that is not installed.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    match tools.iter().find(|t| find_tool(t).is_none()) {
        Some(tool) => Err(format!("`{tool}` is not installed")),
        None => Ok(()),
    }
}

/// `name` in `PATH` or the usual system folders.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A network namespace, deleted when dropped.
pub struct Netns(pub String);

impl Netns {
    /// `None` (and a skip for `what`, a failure under CI) when namespaces
    /// cannot be made here.
    pub fn create(name: &str, what: &str) -> Option<Netns> {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            sluice_testkit::skip(
                what,
                &format!("cannot create a network namespace: {}", why.trim()),
            );
            return None;
        }
        Some(Netns(name.to_owned()))
    }

    /// `argv` run inside the namespace by `ip netns exec`.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(argv);
        c
    }

    /// Runs `argv` in the namespace to its end.
    pub fn output(&self, argv: &[&str]) -> Output {
        self.command(argv).stdin(Stdio::null()).output().unwrap()
    }

    /// Whether `argv` succeeds in the namespace.
    pub fn try_run(&self, argv: &[&str]) -> bool {
        self.output(argv).status.success()
    }

    /// Runs `argv` in the namespace; fails the test when it fails.
    pub fn run(&self, argv: &[&str]) {
        let out = self.output(argv);
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a long-running process in the namespace; its stderr goes to
    /// `stderr` (or is inherited).
    pub fn spawn(&self, argv: &[&str], env: &[(&str, &str)], stderr: Option<&Path>) -> Child {
        let mut c = self.command(argv);
        c.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(path) = stderr {
            c.stderr(File::create(path).unwrap());
        }
        c.spawn().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A network interface of the test's own namespace (one end of a veth
/// pair), deleted when dropped, which deletes its peer too.
pub struct Link(pub String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Processes killed (and reaped) when dropped, before the namespace goes.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A folder anyone can read, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/NAME`, emptied first.
    pub fn create(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        set_mode(&path, 0o755);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A folder this test created, removed when dropped if still empty.
pub struct EmptyDir(pub PathBuf);

impl Drop for EmptyDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// `chmod MODE PATH`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Polls `ready` every 50 ms; fails the test after 20 s.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a log file (none when it does not exist yet).
pub fn log_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
