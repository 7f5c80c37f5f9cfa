//! `sluice proxy` with a remote policy source that accepts connections and
//! never answers: a SIGHUP (whose poll waits behind the hung one) does not
//! keep SIGTERM from stopping the proxy.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn sigterm_stops_the_proxy_while_a_sighup_poll_hangs() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });

    let dir = std::env::temp_dir().join(format!("sluice-proxy-signals-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nsource = \"http://127.0.0.1:{port}/policies/p:v1\"\nallow-unsigned = true\nplain-http = true\npoll-interval-ms = 600000\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["proxy", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("run sluice proxy");
    let log = || std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();

    // The first poll is under way (and hangs).
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::SeqCst) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the proxy exited ({status}): {}", log());
        }
        assert!(Instant::now() < deadline, "no poll came: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(child.id(), "HUP");
    // Let the proxy take the SIGHUP first: its poll waits behind the hung one.
    std::thread::sleep(Duration::from_secs(1));
    let stopping = Instant::now();
    signal(child.id(), "TERM");
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SIGTERM did not stop the proxy in 30 s: {}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}: {}", log());
    assert!(log().contains("proxy stopped"), "{}", log());
    // Written to a file, not a terminal: no colour codes (`kubectl logs`).
    assert!(!log().contains('\x1b'), "{:?}", log());
    let _ = std::fs::remove_dir_all(&dir);
}
