//! Plaintext HTTP through the proxy: statuses, path attacks, smuggling,
//! forged identities, h2c, the decision log and metrics.

use crate::support;

use std::time::Duration;
use support::*;

const POLICY: &str = r#"
mesh { trust-domain "example.org" }

server web {
  port 8080
  protocol http
  route api   { method GET, POST  path prefix "/api" }
  route admin { path prefix "/admin" }
}

allow local-api { to web.api  from network 127.0.0.0/8 }
deny  no-admin  { to web.admin  from any }
"#;

async fn setup(dir: &TempDir) -> (sluice_proxy::Proxy, std::net::SocketAddr) {
    let (app, _) = echo_server().await;
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        r#"
[policy]
bundle = "policy.bundle"
[admin]
listen = "127.0.0.1:0"
[[inbound]]
listen = "127.0.0.1:0"
port = 8080
app = "{app}"
tls = "plaintext"
[log]
decision-log = "decisions.jsonl"
"#
    );
    let proxy = start_proxy(dir, &toml).await;
    let addr = proxy.inbound_addrs()[0];
    (proxy, addr)
}

#[tokio::test]
async fn statuses_follow_the_decision() {
    let dir = TempDir::new("statuses");
    let (proxy, addr) = setup(&dir).await;

    let ok = http1(addr, "GET", "/api/orders?id=1", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-seen-path"), "/api/orders?id=1");
    assert_eq!(
        ok.header("x-seen-identity"),
        "",
        "plaintext peers have no identity"
    );

    let denied = http1(addr, "GET", "/admin/users", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-sluice-error"), "forbidden");

    let no_route = http1(addr, "GET", "/elsewhere", &[]).await;
    assert_eq!(no_route.status, 404);
    let wrong_method = http1(addr, "DELETE", "/api/orders", &[]).await;
    assert_eq!(wrong_method.status, 404);

    let bad = http1(addr, "GET", "/api/a%2Fb", &[]).await;
    assert_eq!(bad.status, 400);

    let grpc = http1(
        addr,
        "POST",
        "/admin.Users/List",
        &[("content-type", "application/grpc")],
    )
    .await;
    assert_eq!(grpc.status, 200);
    assert_eq!(grpc.header("grpc-status"), "12");

    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    for line in [
        r#"sluice_inbound_requests_total{server="web",route="api",rule="local-api",decision="allow"} 1"#,
        r#"sluice_inbound_requests_total{server="web",route="admin",rule="no-admin",decision="deny"} 1"#,
        r#"sluice_inbound_requests_total{server="web",route="",rule="",decision="no-route"} 3"#,
        r#"sluice_inbound_requests_total{server="web",route="",rule="",decision="bad-path"} 1"#,
        "sluice_bundle_info{hash=",
        "sluice_request_duration_seconds_count 6",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    let (_, policy) = admin_get(proxy.admin_addr(), "/policy").await;
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    // the log's writer thread has written every line once shutdown returns
    proxy.shutdown().await;
    let log = std::fs::read_to_string(dir.path("decisions.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["request"]["path"], "/api/orders?id=1");
    assert_eq!(lines[0]["request"]["peer"]["ip"], "127.0.0.1");
    assert_eq!(lines[0]["decision"]["decision"], "allow");
    assert_eq!(lines[1]["decision"]["rule"], "no-admin");
    assert_eq!(lines[1]["bundle"], policy["hash"]);
}

#[tokio::test]
async fn path_attacks_reach_the_application_only_normalized() {
    let dir = TempDir::new("paths");
    let (proxy, addr) = setup(&dir).await;
    let cases = [
        ("/api/../admin/users", 403, ""),
        ("/api/%2e%2e/admin/users", 403, ""),
        ("/api/%2E%2E/%2e%2e/admin", 403, ""),
        ("/api//orders", 200, "/api/orders"),
        ("/api/./x/../orders", 200, "/api/orders"),
        ("/api/%61bc", 200, "/api/abc"),
        ("/api/a%2Fb/../../admin", 400, ""),
        ("/api/a%2fb", 400, ""),
        ("/api/%5C..%5Cadmin", 400, ""),
        ("//api//orders?q=%2F", 200, "/api/orders?q=%2F"),
        ("/admin/../api/x", 200, "/api/x"),
        // Dot segments with path parameters (spec section 7, step 6): Tomcat
        // and Spring would resolve `/api/..;/admin` to `/admin`.
        ("/api/..;/admin/users", 400, ""),
        ("/api/.;/x", 400, ""),
        ("/api/%2e%2e;x/admin", 400, ""),
        ("/api/x/..;/../orders", 400, ""),
        ("/api/x;v=1/orders;a=b", 200, "/api/x;v=1/orders;a=b"),
    ];
    for (target, status, seen) in cases {
        let r = http1(addr, "GET", target, &[]).await;
        assert_eq!(r.status, status, "{target}");
        assert_eq!(r.header("x-seen-path"), seen, "{target}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn forged_identity_never_reaches_the_application() {
    let dir = TempDir::new("forged");
    let (proxy, addr) = setup(&dir).await;
    let r = http1(
        addr,
        "GET",
        "/api/x",
        &[
            (
                "x-sluice-peer-identity",
                "spiffe://example.org/ns/admin/sa/root",
            ),
            ("X-Sluice-Peer-Identity", "spiffe://example.org/ns/x/sa/y"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-identity"), "");
    // Named in `Connection` to be dropped as hop-by-hop: still never forwarded.
    let r = http1(
        addr,
        "GET",
        "/api/x",
        &[
            ("connection", "x-sluice-peer-identity"),
            ("x-sluice-peer-identity", "spiffe://example.org/a"),
        ],
    )
    .await;
    assert_eq!(r.header("x-seen-identity"), "");
    proxy.shutdown().await;
}

#[tokio::test]
async fn header_smuggling_is_refused() {
    let dir = TempDir::new("smuggling");
    let (proxy, addr) = setup(&dir).await;
    let both = b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n";
    let out = raw_exchange(addr, both, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains("x-seen-path"), "{out}");

    let dup =
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd";
    let out = raw_exchange(addr, dup, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains("x-seen-path"), "{out}");

    let differing =
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
    let out = raw_exchange(addr, differing, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains("x-seen-path"), "{out}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_forwarded_as_http2() {
    let dir = TempDir::new("h2c");
    let (proxy, addr) = setup(&dir).await;
    let mut sender = h2c_connect(addr).await;
    for (path, status) in [("/api//h2", 200), ("/admin", 403)] {
        let req = http::Request::builder()
            .uri(format!("http://app.local{path}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = collect(sender.send_request(req).await.unwrap()).await;
        assert_eq!(r.status, status);
        if status == 200 {
            assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
            assert_eq!(r.header("x-seen-path"), "/api/h2");
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let dir = TempDir::new("slowloris");
    let (app, _) = echo_server().await;
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\nheader-read-timeout-ms = 300\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let start = std::time::Instant::now();
    let out = raw_exchange(
        proxy.inbound_addrs()[0],
        b"GET /api/x HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(20),
    )
    .await;
    // Far above the 300 ms timeout (a loaded machine is slow), far below
    // the 300 s idle timeout.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "connection held for {:?}",
        start.elapsed()
    );
    assert!(!out.contains("200"), "{out}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn nothing_is_forwarded_without_a_valid_bundle() {
    let dir = TempDir::new("notready");
    let (app, seen) = echo_server().await;
    std::fs::write(dir.path("policy.bundle"), b"garbage").unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\nwatch-interval-ms = 50\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let (status, body) = admin_get(proxy.admin_addr(), "/ready").await;
    assert_eq!(status, 503, "{body}");
    let out = raw_exchange(
        proxy.inbound_addrs()[0],
        b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(out, "");
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 0);
    // A valid bundle written later is picked up by the watcher.
    write_atomic(&dir.path("policy.bundle"), &compile(POLICY));
    let mut ready = false;
    for _ in 0..100 {
        if admin_get(proxy.admin_addr(), "/ready").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready);
    assert_eq!(
        http1(proxy.inbound_addrs()[0], "GET", "/api/x", &[])
            .await
            .status,
        200
    );
    proxy.shutdown().await;
}
