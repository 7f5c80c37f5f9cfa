//! End to end, inside a network namespace made for the test: `sluice init`
//! redirects a workload's TCP to `sluice proxy`'s transparent outbound
//! listener, and a client that knows nothing of the proxy, running as
//! another user, reaches an allowed upstream and is stopped before a denied
//! one.
//!
//! Needs root, `ip`, `iptables` (with `iptables-restore`) and `setpriv`;
//! without them it prints why and passes without checking anything.
//!
//! The one test re-executes its own binary for the processes it runs inside
//! the namespace, the role chosen by `SLUICE_E2E_ROLE`:
//!
//! - `server`: the upstream, listening on 10.99.0.2:8080 and 10.99.0.1:80;
//!   it answers HTTP with 200, `ping` with `pong`, a TLS record with
//!   `tls-seen`, and logs every connection it accepts; and a WebSocket
//!   server (tungstenite) on 10.99.0.2:8081 and 10.99.0.1:8081;
//! - `probe`: a stand-in for the proxy on 127.0.0.1:4140 that answers each
//!   redirected connection with its original destination and what
//!   `sniff` made of it (checks `sluice init`, `original_dst` and `sniff`
//!   without the proxy);
//! - `client`: one connection, made as user 65534 (or root), its outcome
//!   printed on a `@@RESULT ` line.

#[path = "support/netns.rs"]
mod netns;

use netns::{log_lines, set_mode, wait_for, EmptyDir, Netns, Procs, TempDir};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLE: &str = "SLUICE_E2E_ROLE";
const ARGS: &str = "SLUICE_E2E_ARGS";
const TEST_NAME: &str = "transparent_outbound";

/// The allowed upstream and the one in a denied network.
const ALLOWED: &str = "10.99.0.2:8080";
const DENIED: &str = "10.99.0.1:80";
/// The WebSocket server, allowed and in the denied network.
const WS_ALLOWED: &str = "10.99.0.2:8081";
const WS_DENIED: &str = "10.99.0.1:8081";
const OUTBOUND_PORT: u16 = 4140;
const NOBODY: &str = "65534";

/// The names resolve (through the namespace's own `/etc/hosts`) to the
/// address the client dials, so the test holds whether the proxy connects to
/// the original destination or to the checked addresses of the name.
const HOSTS: &str = "127.0.0.1 localhost\n10.99.0.2 svc.test blocked.example\n";

const POLICY: &str = r#"
egress {
  default deny
  allow upstream      { network 10.99.0.2  port 8080 }
  allow upstream-name { host "svc.test"  port 8080 }
  allow websocket     { network 10.99.0.2  port 8081 }
  allow websocket-name { host "svc.test"  port 8081 }
  deny  blocked-host { host "blocked.example" }
  deny  blocked-net  { network 10.99.0.1/32 }
}
"#;

const PROXY_CONFIG: &str = r#"
[policy]
source = "policy.sluice"
watch = false

[admin]
listen = "127.0.0.1:9990"

[[outbound]]
listen = "127.0.0.1:4140"
mode = "transparent"

[log]
decision-log = "decisions.jsonl"
"#;

#[test]
fn transparent_outbound() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => return roles::server(),
        Ok("probe") => return roles::probe(),
        Ok("client") => return roles::client(),
        Ok(other) => panic!("unknown {ROLE} `{other}`"),
        Err(_) => {}
    }
    // Under CI (`CI=true`) a skip would hide a missing test: it fails instead.
    if let Err(reason) = requirements() {
        sluice_testkit::skip("the transparent proxy test", &reason);
        return;
    }
    let name = format!("sluice-e2e-{}", std::process::id());
    let Some(ns) = Netns::create(&name, "the transparent proxy test") else {
        return;
    };
    let dir = TempDir::create(&name);
    // `ip netns exec` bind-mounts `/etc/netns/NAME/hosts` over `/etc/hosts`.
    let netns_etc = Path::new("/etc/netns");
    let _etc_parent = (!netns_etc.exists()).then(|| EmptyDir(netns_etc.to_owned()));
    let etc = TempDir(netns_etc.join(&name));
    fs::create_dir_all(&etc.0).unwrap();
    fs::write(etc.0.join("hosts"), HOSTS).unwrap();
    let mut procs = Procs(Vec::new());

    // The client runs as nobody: it gets its own copy of this binary, in a
    // folder anyone can enter.
    let client_bin = dir.0.join("e2e-client");
    fs::copy(std::env::current_exe().unwrap(), &client_bin).unwrap();
    set_mode(&client_bin, 0o755);

    // The network: loopback, and the upstream's addresses on an interface.
    ns.run(&["ip", "link", "set", "lo", "up"]);
    if !ns.try_run(&["ip", "link", "add", "sluice0", "type", "dummy"]) {
        // No dummy driver: one end of a veth pair does as well.
        ns.run(&[
            "ip", "link", "add", "sluice0", "type", "veth", "peer", "name", "sluice1",
        ]);
        ns.run(&["ip", "link", "set", "sluice1", "up"]);
    }
    ns.run(&["ip", "addr", "add", "10.99.0.1/24", "dev", "sluice0"]);
    ns.run(&["ip", "addr", "add", "10.99.0.2/24", "dev", "sluice0"]);
    ns.run(&["ip", "link", "set", "sluice0", "up"]);

    // The upstream, run by root.
    let upstream_log = dir.0.join("upstream.log");
    procs.0.push(ns.spawn_role(
        "server",
        &format!(
            "{}|{ALLOWED},{DENIED}|{WS_ALLOWED},{WS_DENIED}",
            upstream_log.display()
        ),
        None,
    ));
    wait_for("the upstream to listen", || {
        log_lines(&upstream_log)
            .iter()
            .filter(|l| l.starts_with("ready"))
            .count()
            == 4
    });

    // Before any rule, and for root (the proxy's uid) after: direct.
    let direct = ns.client(&client_bin, None, &format!("http|{DENIED}|svc.test"));
    assert_eq!(
        direct, "200 hello from 10.99.0.1:80",
        "the upstream is not reachable directly"
    );

    // `sluice init`, twice: the second run replaces the rules.
    let sluice = env!("CARGO_BIN_EXE_sluice");
    let port = OUTBOUND_PORT.to_string();
    for _ in 0..2 {
        let out = ns.output(&[sluice, "init", "--outbound-port", &port, "--proxy-uid", "0"]);
        assert!(
            out.status.success(),
            "sluice init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let saved = String::from_utf8(ns.output(&["iptables-save", "-t", "nat"]).stdout).unwrap();
    eprintln!("{saved}");
    assert_eq!(
        saved.matches("-A OUTPUT -j SLUICE_OUTPUT").count(),
        1,
        "{saved}"
    );
    assert_eq!(saved.matches("--to-ports 4140").count(), 1, "{saved}");
    assert!(
        saved.contains("-A SLUICE_OUTPUT -m owner --uid-owner 0 -j RETURN"),
        "{saved}"
    );
    let direct = ns.client(&client_bin, None, &format!("http|{DENIED}|svc.test"));
    assert_eq!(
        direct, "200 hello from 10.99.0.1:80",
        "root's connections must not be redirected"
    );

    // The probe: redirected connections, their original destination and
    // protocol, seen from the listener.
    let ready = dir.0.join("probe.ready");
    let probe = Procs(vec![ns.spawn_role(
        "probe",
        &ready.display().to_string(),
        None,
    )]);
    wait_for("the probe to listen", || ready.exists());
    let accepted = upstream_accepts(&upstream_log);
    let nobody = Some(NOBODY);
    let seen = ns.client(
        &client_bin,
        nobody,
        &format!("http|{ALLOWED}|svc.test:8080"),
    );
    assert!(seen.contains("dst=10.99.0.2:8080 sniffed=Http1"), "{seen}");
    let seen = ns.client(&client_bin, nobody, &format!("raw|{DENIED}|ping"));
    assert_eq!(seen, r#"recv "dst=10.99.0.1:80 sniffed=Opaque\n""#);
    let seen = ns.client(&client_bin, nobody, "tls|10.99.0.1:443|api.example.com");
    assert_eq!(
        seen,
        r#"recv "dst=10.99.0.1:443 sniffed=Tls { sni: Some(\"api.example.com\") }\n""#
    );
    // A client that waits for the server to speak first: opaque at the timeout.
    let seen = ns.client(&client_bin, nobody, &format!("silent|{ALLOWED}"));
    assert_eq!(seen, r#"recv "dst=10.99.0.2:8080 sniffed=Opaque\n""#);
    // Loopback is not redirected: nothing listens on 127.0.0.1:4141.
    let seen = ns.client(&client_bin, nobody, "raw|127.0.0.1:4141|ping");
    assert!(seen.starts_with("error: connect"), "{seen}");
    assert_eq!(
        upstream_accepts(&upstream_log),
        accepted,
        "the probe's connections reached the upstream"
    );
    drop(probe);

    // The proxy.
    fs::write(dir.0.join("policy.sluice"), POLICY).unwrap();
    let config = dir.0.join("proxy.toml");
    fs::write(&config, PROXY_CONFIG).unwrap();
    let proxy_err = dir.0.join("proxy.stderr");
    let config_arg = config.display().to_string();
    procs.0.push(ns.spawn(
        &[sluice, "proxy", "--config", &config_arg],
        &[],
        Some(&proxy_err),
    ));
    let started = Instant::now();
    loop {
        let proxy = procs.0.last_mut().unwrap();
        if let Some(status) = proxy.try_wait().unwrap() {
            let stderr = fs::read_to_string(&proxy_err).unwrap_or_default();
            panic!("the proxy exited ({status}):\n{stderr}");
        }
        if ns
            .client(&client_bin, None, "http|127.0.0.1:9990|localhost")
            .starts_with("200 ")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the proxy is not ready:\n{}",
            fs::read_to_string(&proxy_err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = |what: &str| {
        format!(
            "{what}\n--- proxy stderr\n{}\n--- decisions\n{}\n--- upstream\n{}",
            fs::read_to_string(&proxy_err).unwrap_or_default(),
            fs::read_to_string(dir.0.join("decisions.jsonl")).unwrap_or_default(),
            fs::read_to_string(&upstream_log).unwrap_or_default(),
        )
    };

    // Loopback is not redirected: the admin listener answers nobody directly
    // (through the outbound listener it would be an egress decision).
    let seen = ns.client(&client_bin, nobody, "http|127.0.0.1:9990|localhost");
    assert!(seen.starts_with("200 "), "{}", report(&seen));

    // Allowed: HTTP, opaque TCP and TLS reach the upstream through the proxy.
    let seen = ns.client(
        &client_bin,
        nobody,
        &format!("http|{ALLOWED}|svc.test:8080"),
    );
    assert_eq!(seen, "200 hello from 10.99.0.2:8080", "{}", report(&seen));
    assert!(
        log_lines(&upstream_log)
            .iter()
            .any(|l| l == "http 10.99.0.2:8080 host=svc.test:8080"),
        "{}",
        report("no request upstream")
    );
    let seen = ns.client(&client_bin, nobody, &format!("raw|{ALLOWED}|ping"));
    assert_eq!(seen, r#"recv "pong\n""#, "{}", report(&seen));
    let seen = ns.client(&client_bin, nobody, &format!("tls|{ALLOWED}|svc.test"));
    assert_eq!(seen, r#"recv "tls-seen\n""#, "{}", report(&seen));
    // A WebSocket: upgraded, relayed both ways, closed; the client's
    // forged identity header never reaches the upstream.
    let seen = ns.client(
        &client_bin,
        nobody,
        &format!("ws|{WS_ALLOWED}|svc.test:8081"),
    );
    assert_eq!(seen, "ws hello identity= | echo ping", "{}", report(&seen));
    wait_for("the upstream to see the WebSocket close", || {
        log_lines(&upstream_log)
            .iter()
            .any(|l| l == &format!("ws-closed {WS_ALLOWED}"))
    });

    // Denied: nothing reaches the upstream.
    let accepted = upstream_accepts(&upstream_log);
    let seen = ns.client(
        &client_bin,
        nobody,
        &format!("http|{ALLOWED}|blocked.example:8080"),
    );
    assert!(seen.starts_with("403 "), "{}", report(&seen));
    let seen = ns.client(&client_bin, nobody, &format!("http|{DENIED}|svc.test"));
    assert!(seen.starts_with("403 "), "{}", report(&seen));
    let seen = ns.client(&client_bin, nobody, &format!("raw|{DENIED}|ping"));
    assert!(!seen.contains("pong"), "{}", report(&seen));
    let seen = ns.client(&client_bin, nobody, &format!("ws|{WS_DENIED}|{WS_DENIED}"));
    assert_eq!(seen, "ws-error 403", "{}", report(&seen));
    let seen = ns.client(
        &client_bin,
        nobody,
        &format!("tls|{ALLOWED}|blocked.example"),
    );
    assert!(!seen.contains("tls-seen"), "{}", report(&seen));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        upstream_accepts(&upstream_log),
        accepted,
        "{}",
        report("a denied connection reached the upstream")
    );
    assert!(
        !log_lines(&upstream_log)
            .iter()
            .any(|l| l.contains("blocked.example")),
        "{}",
        report("a denied request reached the upstream")
    );
}

/// Why the test cannot run here, if it cannot.
fn requirements() -> Result<(), String> {
    netns::require_root()?;
    netns::require_tools(&[
        "ip",
        "iptables",
        "iptables-restore",
        "iptables-save",
        "setpriv",
    ])
}

/// The roles this test runs inside its namespace.
impl Netns {
    /// Starts this binary in a role, as root.
    fn spawn_role(&self, role: &str, args: &str, stderr: Option<&Path>) -> Child {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        self.spawn(
            &[exe, "--exact", TEST_NAME, "--nocapture"],
            &[(ROLE, role), (ARGS, args)],
            stderr,
        )
    }

    /// Runs one client connection (as `uid`, else root); its result line.
    fn client(&self, bin: &Path, uid: Option<&str>, args: &str) -> String {
        let bin = bin.to_str().unwrap();
        let reuid = uid.map(|u| format!("--reuid={u}"));
        let regid = uid.map(|u| format!("--regid={u}"));
        let mut argv: Vec<&str> = Vec::new();
        if let (Some(reuid), Some(regid)) = (&reuid, &regid) {
            argv.extend(["setpriv", reuid, regid, "--clear-groups"]);
        }
        argv.extend([bin, "--exact", TEST_NAME, "--nocapture", "--test-threads=1"]);
        let out = self
            .command(&argv)
            .env(ROLE, "client")
            .env(ARGS, args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result = stdout
            .lines()
            .find_map(|l| l.split_once("@@RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| {
                panic!(
                    "the client `{args}` printed no result ({}):\n{stdout}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned();
        eprintln!("client {} {args}: {result}", uid.unwrap_or("root"));
        result
    }
}

/// How many connections the upstream has accepted so far.
fn upstream_accepts(log: &Path) -> usize {
    log_lines(log)
        .iter()
        .filter(|l| l.starts_with("accept "))
        .count()
}

/// A TLS 1.2-style ClientHello record asking for `host`.
fn client_hello(host: &str) -> Vec<u8> {
    let name = host.as_bytes();
    let mut sni = vec![0, 0]; // extension type server_name
    sni.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression
    body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    body.extend_from_slice(&sni);
    let mut message = vec![1, 0]; // ClientHello, 24-bit length
    message.extend_from_slice(&(body.len() as u16).to_be_bytes());
    message.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(message.len() as u16).to_be_bytes());
    record.extend_from_slice(&message);
    record
}

/// What the re-executed binary does.
mod roles {
    use super::*;

    fn args() -> Vec<String> {
        std::env::var(ARGS)
            .unwrap_or_default()
            .split('|')
            .map(str::to_owned)
            .collect()
    }

    /// Reads what the peer has sent, up to EOF or a pause of `wait`.
    fn read_some(stream: &mut TcpStream, until: impl Fn(&[u8]) -> bool, wait: Duration) -> Vec<u8> {
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !until(&data) {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        data
    }

    /// Half-closes, then waits (briefly) for the peer to close, so that
    /// closing with unread bytes never turns into a reset.
    fn finish(mut stream: TcpStream) {
        let _ = stream.shutdown(Shutdown::Write);
        let _ = read_some(&mut stream, |_| false, Duration::from_secs(1));
    }

    /// The upstream: `LOG|ADDR,ADDR|WSADDR,WSADDR`.
    pub fn server() {
        let args = args();
        let log = Arc::new(Mutex::new(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args[0])
                .unwrap(),
        ));
        let note = move |line: String| {
            let mut f = log.lock().unwrap();
            writeln!(f, "{line}").unwrap();
            f.flush().unwrap();
        };
        let mut threads = Vec::new();
        for addr in args[1].split(',') {
            let listener = TcpListener::bind(addr).unwrap();
            note(format!("ready {addr}"));
            let note = note.clone();
            threads.push(std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let local = stream.local_addr().unwrap();
                    note(format!("accept {local} from {}", stream.peer_addr().unwrap()));
                    let note = note.clone();
                    std::thread::spawn(move || {
                        let data = read_some(
                            &mut stream,
                            |d| d.first() == Some(&0x16) || d.ends_with(b"\n\r\n") || d == b"ping\n",
                            Duration::from_secs(5),
                        );
                        let reply = if data.first() == Some(&0x16) {
                            note(format!("tls {local}"));
                            "tls-seen\n".to_owned()
                        } else if data == b"ping\n" {
                            note(format!("ping {local}"));
                            "pong\n".to_owned()
                        } else {
                            let text = String::from_utf8_lossy(&data);
                            let host = text
                                .lines()
                                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("host")))
                                .map_or("", |(_, v)| v.trim());
                            note(format!("http {local} host={host}"));
                            let body = format!("hello from {local}");
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        let _ = stream.write_all(reply.as_bytes());
                        finish(stream);
                    });
                }
            }));
        }
        for addr in args[2].split(',') {
            let listener = TcpListener::bind(addr).unwrap();
            note(format!("ready {addr}"));
            let note = note.clone();
            threads.push(std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let local = stream.local_addr().unwrap();
                    note(format!(
                        "accept {local} from {}",
                        stream.peer_addr().unwrap()
                    ));
                    let note = note.clone();
                    std::thread::spawn(move || websocket(stream, local, note));
                }
            }));
        }
        for t in threads {
            let _ = t.join();
        }
    }

    /// One WebSocket connection of the upstream: sends `hello identity=IDS`
    /// (the `x-sluice-peer-identity` values received), then answers each
    /// text message with `echo TEXT` until the client closes.
    fn websocket(stream: TcpStream, local: SocketAddr, note: impl Fn(String)) {
        use tungstenite::handshake::server::{Request, Response};
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut seen = (String::new(), String::new());
        // The callback's error type is tungstenite's.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| {
            seen.0 = req
                .headers()
                .get("host")
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .unwrap_or_default();
            seen.1 = req
                .headers()
                .get_all("x-sluice-peer-identity")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join("|");
            Ok(resp)
        };
        let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
            note(format!("ws-failed {local}"));
            return;
        };
        note(format!("ws {local} host={}", seen.0));
        let _ = ws.send(tungstenite::Message::text(format!(
            "hello identity={}",
            seen.1
        )));
        while let Ok(msg) = ws.read() {
            if let tungstenite::Message::Text(text) = msg {
                let reply = format!("echo {}", text.as_str());
                if ws.send(tungstenite::Message::text(reply)).is_err() {
                    break;
                }
            }
        }
        note(format!("ws-closed {local}"));
    }

    /// Stands in for the proxy on the outbound port: `READY_FILE`.
    pub fn probe() {
        use sluice_proxy::outbound::transparent::{original_dst, sniff};
        use tokio::io::AsyncWriteExt;
        let args = args();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", OUTBOUND_PORT))
                .await
                .unwrap();
            fs::write(&args[0], "ready").unwrap();
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let dst = match original_dst(&stream) {
                    Ok(a) => a.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                // Long enough for a slow client's first bytes on a loaded
                // machine; the silent client's read waits 5 s for the reply.
                let sniffed = match sniff(&stream, Duration::from_secs(2)).await {
                    Ok(s) => format!("{s:?}"),
                    Err(e) => format!("error: {e}"),
                };
                // Take what was sent, so that closing does not reset.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = stream.try_read(&mut buf);
                let reply = format!("dst={dst} sniffed={sniffed}\n");
                let _ = stream.write_all(reply.as_bytes()).await;
                let std = stream.into_std().unwrap();
                std.set_nonblocking(false).unwrap();
                std::thread::spawn(move || finish(std));
            }
        });
    }

    /// One connection: `http|ADDR|HOST`, `raw|ADDR|ping`, `tls|ADDR|SNI`,
    /// `ws|ADDR|HOST` or `silent|ADDR`; prints `@@RESULT ...`.
    pub fn client() {
        let args = args();
        let addr: SocketAddr = args[1].parse().unwrap();
        let result = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Err(e) => format!("error: connect: {}", e.kind()),
            Ok(mut stream) => match args[0].as_str() {
                "http" => http(&mut stream, &args[2]),
                "raw" => {
                    let _ = stream.write_all(format!("{}\n", args[2]).as_bytes());
                    let _ = stream.shutdown(Shutdown::Write);
                    recv(&mut stream)
                }
                "tls" => {
                    let _ = stream.write_all(&client_hello(&args[2]));
                    let _ = stream.shutdown(Shutdown::Write);
                    recv(&mut stream)
                }
                "silent" => recv(&mut stream),
                "ws" => ws(stream, &args[2]),
                other => panic!("unknown client mode `{other}`"),
            },
        };
        println!("\n@@RESULT {result}");
    }

    /// A WebSocket to `ws://HOST/chat` with a forged identity header:
    /// `ws GREETING | ECHO` of a `ping`, then a clean close; or
    /// `ws-error STATUS` when the handshake gets another answer.
    fn ws(stream: TcpStream, host: &str) -> String {
        use tungstenite::client::IntoClientRequest;
        use tungstenite::{Error, HandshakeError, Message};
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = format!("ws://{host}/chat").into_client_request().unwrap();
        req.headers_mut().insert(
            "x-sluice-peer-identity",
            "spiffe://example.org/forged".parse().unwrap(),
        );
        let mut ws = match tungstenite::client(req, stream) {
            Ok((ws, _)) => ws,
            Err(HandshakeError::Failure(Error::Http(resp))) => {
                return format!("ws-error {}", resp.status().as_u16())
            }
            Err(e) => return format!("error: handshake: {e}"),
        };
        let text = |ws: &mut tungstenite::WebSocket<TcpStream>| match ws.read() {
            Ok(Message::Text(t)) => t.as_str().to_owned(),
            other => format!("unexpected {other:?}"),
        };
        let greeting = text(&mut ws);
        if let Err(e) = ws.send(Message::text("ping")) {
            return format!("error: send: {e}");
        }
        let echo = text(&mut ws);
        let _ = ws.close(None);
        // Until the server's close reply and the end of the connection.
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(Error::ConnectionClosed) => break,
                Err(e) => return format!("error: closing: {e}"),
            }
        }
        format!("ws {greeting} | {echo}")
    }

    fn recv(stream: &mut TcpStream) -> String {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut data = Vec::new();
        match stream.read_to_end(&mut data) {
            Ok(_) => format!("recv {:?}", String::from_utf8_lossy(&data)),
            Err(e) if data.is_empty() => format!("error: read: {}", e.kind()),
            Err(e) => format!(
                "recv {:?} then error: {}",
                String::from_utf8_lossy(&data),
                e.kind()
            ),
        }
    }

    /// A GET with `Host: host`; `STATUS BODY`.
    fn http(stream: &mut TcpStream, host: &str) -> String {
        let path = if host == "localhost" { "/ready" } else { "/" };
        let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        if let Err(e) = stream.write_all(request.as_bytes()) {
            return format!("error: write: {}", e.kind());
        }
        let data = read_some(stream, response_complete, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&data);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return format!("error: no response: {text:?}");
        };
        let status = head.split(' ').nth(1).unwrap_or("?");
        format!("{status} {}", body.trim_end())
    }

    fn response_complete(data: &[u8]) -> bool {
        let text = String::from_utf8_lossy(data);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if k.eq_ignore_ascii_case("content-length") {
                v.trim().parse::<usize>().ok()
            } else {
                None
            }
        });
        length.is_some_and(|n| body.len() >= n)
    }
}
