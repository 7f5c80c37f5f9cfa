//! Hot reload: under load through `POST /reload` with some corrupt
//! bundles, and TCP connections closed when a new bundle revokes them.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALLOW: &str = r#"
server web { port 8080  protocol http  route api { path prefix "/api" } }
allow open-api { to web.api  from network 127.0.0.0/8 }
"#;

const DENY: &str = r#"
server web { port 8080  protocol http  route api { path prefix "/api" } }
deny closed-api { to web.api  from network 127.0.0.0/8 }
"#;

fn hash_of(bytes: &[u8]) -> String {
    sluice_proxy::store::LoadedBundle::load(bytes, 0)
        .unwrap()
        .hash()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_drop_nothing() {
    let dir = TempDir::new("reload-load");
    let (app, _) = echo_server().await;
    let allow = compile(ALLOW);
    let deny = compile(DENY);
    let (allow_hash, deny_hash) = (hash_of(&allow), hash_of(&deny));
    std::fs::write(dir.path("policy.bundle"), &allow).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n[log]\ndecision-log = \"decisions.jsonl\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let addr = proxy.inbound_addrs()[0];
    let admin = proxy.admin_addr();

    // Clients on keep-alive connections, sending without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, sent) = (stop.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::builder()
                    .uri("/api/x")
                    .header("host", "web")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let r = sender
                    .send_request(req)
                    .await
                    .expect("a request failed outside the policy");
                let r = collect(r).await;
                sent.fetch_add(1, Ordering::Relaxed);
                statuses.push(r.status);
            }
            statuses
        }));
    }

    // A connection opened before the reloads, to check that each new
    // request on it follows the newest bundle.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut probe, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);

    let mut serving = allow_hash.clone();
    let mut corrupt = 0;
    for i in 0..50 {
        let (bytes, expect_ok) = match i % 5 {
            4 => {
                let mut bad = if i % 2 == 0 {
                    allow.clone()
                } else {
                    deny.clone()
                };
                let at = bad.len() / 2;
                bad[at] ^= 0x40;
                (bad, false)
            }
            3 => (allow[..allow.len() - 9].to_vec(), false),
            n if n % 2 == 0 => (deny.clone(), true),
            _ => (allow.clone(), true),
        };
        write_atomic(&dir.path("policy.bundle"), &bytes);
        let (status, body) = admin_reload(admin).await;
        if expect_ok {
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            serving = v["hash"].as_str().unwrap().to_owned();
        } else {
            corrupt += 1;
            assert_eq!(status, 422, "{body}");
            assert!(
                body.contains(&serving),
                "the old bundle keeps serving: {body}"
            );
        }
        let req = http::Request::builder()
            .uri("/api/probe")
            .header("host", "web")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = collect(probe.send_request(req).await.unwrap()).await;
        let expected = if serving == allow_hash { 200 } else { 403 };
        assert_eq!(
            r.status, expected,
            "reload {i}: the next request uses the bundle now serving"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let statuses = c.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 403),
            "{statuses:?}"
        );
        total += statuses.len();
    }
    assert!(total > 100, "only {total} requests were sent");
    assert_eq!(corrupt, 20);
    let (_, metrics) = admin_get(admin, "/metrics").await;
    assert!(
        metrics.contains("sluice_bundle_reloads_total{result=\"error\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_bundle_reloads_total{result=\"ok\"} 31"),
        "{metrics}"
    );
    // the log's writer thread has written every line once shutdown returns
    proxy.shutdown().await;

    let log = std::fs::read_to_string(dir.path("decisions.jsonl")).unwrap();
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let hash = v["bundle"].as_str().unwrap();
        let decision = v["decision"]["decision"].as_str().unwrap();
        if hash == allow_hash {
            assert_eq!(decision, "allow", "{line}");
            assert_eq!(v["decision"]["rule"], "open-api");
        } else {
            assert_eq!(hash, deny_hash, "{line}");
            assert_eq!(decision, "deny", "{line}");
            assert_eq!(v["decision"]["rule"], "closed-api");
        }
        lines += 1;
    }
    assert_eq!(lines, total + 50, "one log line per decision");
}

const TCP_ALLOW: &str = r#"
server db { port 5432  protocol tcp }
allow local-db { to db  from network 127.0.0.0/8 }
"#;

const TCP_DENY: &str = r#"
server db { port 5432  protocol tcp }
allow remote-db { to db  from network 10.0.0.0/8 }
"#;

#[tokio::test]
async fn revoked_tcp_connections_are_closed() {
    let dir = TempDir::new("reload-tcp");
    let app = tcp_echo_server().await;
    std::fs::write(dir.path("policy.bundle"), compile(TCP_ALLOW)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 5432\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let addr = proxy.inbound_addrs()[0];

    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 64];
    let n = kept.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"echo: hello");

    write_atomic(&dir.path("policy.bundle"), &compile(TCP_DENY));
    assert_eq!(admin_reload(proxy.admin_addr()).await.0, 200);
    let closed = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

    // A new connection is denied: closed before any byte reaches the application.
    let out = raw_exchange(addr, b"hello", Duration::from_secs(2)).await;
    assert_eq!(out, "");
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains("sluice_inbound_connections_revoked_total{server=\"db\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sluice_inbound_connections_total{server=\"db\",rule=\"\",decision=\"deny\"} 1"
        ),
        "{metrics}"
    );
    proxy.shutdown().await;
}
