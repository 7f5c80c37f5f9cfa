//! Connection limits, idle timeouts and graceful shutdown.

use crate::support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncReadExt;

const POLICY: &str = r#"
server web { port 8080  protocol http  route all { path prefix "/" } }
allow everyone { to web.all  from any }
"#;

async fn proxy_with(dir: &TempDir, app: std::net::SocketAddr, limits: &str) -> sluice_proxy::Proxy {
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\n{limits}\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    start_proxy(dir, &toml).await
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let dir = TempDir::new("limit");
    let (app, _) = echo_server().await;
    let proxy = proxy_with(&dir, app, "max-connections = 2").await;
    let addr = proxy.inbound_addrs()[0];
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains("sluice_connections_refused_total{reason=\"limit\"} 1"),
        "{metrics}"
    );
    drop((_a, _b));
    proxy.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = TempDir::new("idle");
    let (app, _) = echo_server().await;
    let proxy = proxy_with(&dir, app, "idle-timeout-ms = 200").await;
    let mut idle = tokio::net::TcpStream::connect(proxy.inbound_addrs()[0])
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let dir = TempDir::new("drain");
    let app = slow_server(Duration::from_millis(400)).await;
    let proxy = proxy_with(&dir, app, "drain-timeout-ms = 5000").await;
    let addr = proxy.inbound_addrs()[0];
    // The application cannot answer before 400 ms from now.
    let sent = Instant::now();
    let in_flight = tokio::spawn(async move { http1(addr, "GET", "/slow", &[]).await });
    // Shut down once the request is decided (and so forwarded or about to be).
    let admin = proxy.admin_addr();
    loop {
        let (_, metrics) = admin_get(admin, "/metrics").await;
        if metric_sum(&metrics, "sluice_inbound_requests_total", &[]) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.shutdown().await;
    let drained = sent.elapsed();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the request in flight finished");
    assert_eq!(&r.body[..], b"slow");
    assert!(
        drained >= Duration::from_millis(400),
        "shutdown waited for it: {drained:?}"
    );
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn tcp_relays_give_up_connecting_after_the_tcp_connect_timeout() {
    // An application whose accept queue is full: connecting to it hangs.
    let app = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    app.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    app.listen(0).unwrap();
    let app_addr = app.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&app_addr.into());
        queued.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dir = TempDir::new("tcp-connect-timeout");
    std::fs::write(
        dir.path("policy.bundle"),
        compile("server db { port 5432  protocol tcp }\nallow everyone { to db  from any }\n"),
    )
    .unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\ntcp-connect-timeout-ms = 300\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 5432\napp = \"{app_addr}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(&dir, &toml).await;
    let started = Instant::now();
    let mut client = tokio::net::TcpStream::connect(proxy.inbound_addrs()[0])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains("sluice_upstream_errors_total{reason=\"connect\"} 1"),
        "{metrics}"
    );
    drop(queued);
    proxy.shutdown().await;
}
