//! HTTP/1.1 `Upgrade` through the proxy with a real WebSocket client and
//! server (tokio-tungstenite), inbound over mTLS and plaintext, and on the
//! explicit outbound listener to a declared service and to an egress
//! destination. Everything on 127.0.0.1.

use crate::support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use support::certs::{self, Ca, Svid};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const FRONTEND: &str = "spiffe://example.org/ns/shop/sa/frontend";
/// Generous: the machine may be loaded.
const WAIT: Duration = Duration::from_secs(20);

/// A WebSocket application. Each connection first sends
/// `hello PATH identity=IDS` (the `x-sluice-peer-identity` values it
/// received, joined by `|`), then echoes every text and binary message;
/// on `bye` it closes the connection itself. `events` gets `open PATH`
/// and `closed PATH` lines.
async fn ws_app() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = local_server(move |stream| {
        let tx = tx.clone();
        async move {
            let mut seen = (String::new(), String::new());
            // The callback's error type is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |req: &WsRequest, resp: WsResponse| {
                seen.0 = req.uri().path().to_owned();
                seen.1 = peer_identities(req.headers());
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let (path, ids) = seen;
            let _ = tx.send(format!("open {path}"));
            let _ = ws
                .send(Message::text(format!("hello {path} identity={ids}")))
                .await;
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(t) if t.as_str() == "bye" => {
                        let _ = ws.close(None).await;
                    }
                    Message::Text(_) | Message::Binary(_) => {
                        let sent = ws.send(msg).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let _ = tx.send(format!("closed {path}"));
        }
    })
    .await;
    (addr, rx)
}

/// The next event of the application, waiting at most [`WAIT`].
async fn event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an application event in time")
        .expect("the application is running")
}

/// A WebSocket handshake for `url` over `io`, with `headers` added.
async fn ws_connect<S>(
    io: S,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    for (n, v) in headers {
        let name = http::HeaderName::from_bytes(n.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let handshake = tokio_tungstenite::client_async(req, io);
    let (ws, resp) = tokio::time::timeout(WAIT, handshake)
        .await
        .expect("a handshake in time")?;
    assert_eq!(resp.status(), 101);
    Ok(ws)
}

/// The next message, waiting at most [`WAIT`].
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Option<Message> {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a message in time")
        .map(|m| m.unwrap())
}

/// Checks the greeting, echoes of text, binary and a large message, then
/// closes from the client side and sees the close completed.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>, greeting: &str) {
    assert_eq!(next(&mut ws).await, Some(Message::text(greeting)));
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("ping")));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::binary(vec![0u8, 1, 2, 255]))
    );
    let large: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(large.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::binary(large)));
    ws.close(None).await.unwrap();
    // The application's close reply comes back, then the stream ends.
    loop {
        match next(&mut ws).await {
            Some(Message::Close(_)) => {}
            None => break,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}

/// The application closes: the client sees the close and the end.
async fn closed_by_the_app<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    assert!(matches!(next(&mut ws).await, Some(Message::Text(_))));
    ws.send(Message::text("bye")).await.unwrap();
    assert!(
        matches!(next(&mut ws).await, Some(Message::Close(_))),
        "the close frame"
    );
    let end = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("the end in time");
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
}

const INBOUND_POLICY: &str = r#"
mesh { trust-domain "example.org" }
server web {
  port 8443
  protocol http
  route ws   { path prefix "/ws" }
  route open { path prefix "/open" }
}
allow frontend { to web.ws    from identity "spiffe://example.org/ns/shop/sa/frontend" }
allow anyone   { to web.open  from any }
"#;

struct Inbound {
    _dir: TempDir,
    ca: Ca,
    proxy: sluice_proxy::Proxy,
    events: mpsc::UnboundedReceiver<String>,
}

/// A permissive (TLS or plaintext) inbound listener in front of [`ws_app`].
async fn inbound(extra: &str) -> Inbound {
    let (app, events) = ws_app().await;
    inbound_to(app, events, extra).await
}

/// A permissive inbound listener in front of the application at `app`.
async fn inbound_to(
    app: SocketAddr,
    events: mpsc::UnboundedReceiver<String>,
    extra: &str,
) -> Inbound {
    let dir = TempDir::new("upgrade-inbound");
    let ca = Ca::new("example.org");
    ca.svid("spiffe://example.org/ns/default/sa/web")
        .write(&dir.0, "web");
    ca.write_bundle(&dir.0, "example.org");
    std::fs::write(dir.path("policy.bundle"), compile(INBOUND_POLICY)).unwrap();
    let toml = format!(
        r#"
[policy]
bundle = "policy.bundle"
watch = false
[admin]
listen = "127.0.0.1:0"
[identity]
cert = "web.pem"
key = "web.key"
trust-bundles = {{ "example.org" = "example.org.pem" }}
[[inbound]]
listen = "127.0.0.1:0"
port = 8443
app = "{app}"
tls = "permissive"
{extra}
"#
    );
    let proxy = start_proxy(&dir, &toml).await;
    Inbound {
        _dir: dir,
        ca,
        proxy,
        events,
    }
}

impl Inbound {
    async fn tls(&self, client: &Svid) -> tokio_rustls::client::TlsStream<TcpStream> {
        let config = certs::client_config(&self.ca, Some(client), &["http/1.1"]);
        certs::connect(self.proxy.inbound_addrs()[0], config)
            .await
            .unwrap()
    }

    async fn plain(&self) -> TcpStream {
        TcpStream::connect(self.proxy.inbound_addrs()[0])
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_websockets_are_relayed_inbound() {
    let mut m = inbound("").await;
    let frontend = m.ca.svid(FRONTEND);
    // The verified identity replaces the one the client wrote.
    let forged = [(
        "x-sluice-peer-identity",
        "spiffe://example.org/ns/shop/sa/admin",
    )];
    let ws = ws_connect(
        m.tls(&frontend).await,
        "ws://web.example.org/ws/chat",
        &forged,
    )
    .await
    .unwrap();
    assert_eq!(event(&mut m.events).await, "open /ws/chat");
    exchange(ws, &format!("hello /ws/chat identity={FRONTEND}")).await;
    assert_eq!(event(&mut m.events).await, "closed /ws/chat");

    // The application closes first.
    let ws = ws_connect(m.tls(&frontend).await, "ws://web.example.org/ws/bye", &[])
        .await
        .unwrap();
    assert_eq!(event(&mut m.events).await, "open /ws/bye");
    closed_by_the_app(ws).await;
    assert_eq!(event(&mut m.events).await, "closed /ws/bye");

    // Plaintext, allowed route: no identity header reaches the application.
    let ws = ws_connect(m.plain().await, "ws://web.example.org/open/x", &forged)
        .await
        .unwrap();
    assert_eq!(event(&mut m.events).await, "open /open/x");
    exchange(ws, "hello /open/x identity=").await;
    assert_eq!(event(&mut m.events).await, "closed /open/x");
    m.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_upgrades_get_403_before_anything_is_upgraded() {
    let mut m = inbound("").await;
    // Not the allowed identity, and no identity at all.
    let other = m.ca.svid("spiffe://example.org/ns/shop/sa/other");
    match ws_connect(m.tls(&other).await, "ws://web.example.org/ws/chat", &[]).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    match ws_connect(m.plain().await, "ws://web.example.org/ws/chat", &[]).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // Raw: a 403 and no 101, and the connection still speaks HTTP/1.1.
    let mut raw = m.plain().await;
    let upgrade = "GET /ws/chat HTTP/1.1\r\nhost: web\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
                   sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // Nothing reached the application.
    assert!(m.events.try_recv().is_err());
    // The one allowed client still gets through.
    let ws = ws_connect(
        m.tls(&m.ca.svid(FRONTEND)).await,
        "ws://web.example.org/ws/ok",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(event(&mut m.events).await, "open /ws/ok");
    exchange(ws, &format!("hello /ws/ok identity={FRONTEND}")).await;
    m.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_end_at_shutdown_and_when_idle() {
    let mut m = inbound("[limits]\nidle-timeout-ms = 1500\ndrain-timeout-ms = 2000").await;
    let frontend = m.ca.svid(FRONTEND);
    // Idle: no byte either way for the idle timeout closes both sides.
    let mut ws = ws_connect(m.tls(&frontend).await, "ws://web.example.org/ws/idle", &[])
        .await
        .unwrap();
    assert_eq!(event(&mut m.events).await, "open /ws/idle");
    assert!(matches!(next(&mut ws).await, Some(Message::Text(_))));
    let end = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("closed when idle");
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
    assert_eq!(event(&mut m.events).await, "closed /ws/idle");

    // Shutdown ends an open relay.
    let mut ws = ws_connect(m.tls(&frontend).await, "ws://web.example.org/ws/open", &[])
        .await
        .unwrap();
    assert_eq!(event(&mut m.events).await, "open /ws/open");
    assert!(matches!(next(&mut ws).await, Some(Message::Text(_))));
    tokio::time::timeout(WAIT, m.proxy.shutdown())
        .await
        .expect("shutdown in time");
    let end = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("closed at shutdown");
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
}

#[tokio::test]
async fn h2c_applications_cannot_take_upgrades() {
    let m = inbound("app-protocol = \"h2c\"").await;
    match ws_connect(m.plain().await, "ws://web.example.org/open/x", &[]).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 501);
            assert_eq!(resp.headers()["x-sluice-error"], "upgrade");
        }
        other => panic!("expected 501, got {other:?}"),
    }
    m.proxy.shutdown().await;
}

/// A relay needs a connection permit of its own: when none is left, the
/// upgrade is answered 503 `limit` (as on the outbound listeners), not
/// taken for an unreachable application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_beyond_the_connection_limit_get_503() {
    let m = inbound("[limits]\nmax-connections = 1").await;
    match ws_connect(m.plain().await, "ws://web.example.org/open/x", &[]).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert_eq!(resp.headers()["x-sluice-error"], "limit");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    let (_, metrics) = admin_get(m.proxy.admin_addr(), "/metrics").await;
    assert_eq!(
        metric_sum(&metrics, "sluice_upstream_errors_total", &[]),
        0.0,
        "{metrics}"
    );
    m.proxy.shutdown().await;
}

/// An application that switches to whatever protocol a request names in
/// `Upgrade` (as an h2c-capable server such as Go's `h2c` handler does for
/// `h2c`): `101`, then it reports what comes on the upgraded connection
/// (`tunnel TEXT`). Other requests get `200 plain` and `plain LINE` (their
/// request line) in `events`.
async fn upgrading_app() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = local_server(move |mut stream| {
        let tx = tx.clone();
        async move {
            loop {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let upgrade = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("upgrade:")
                        .map(|v| v.trim().to_owned())
                });
                let Some(protocol) = upgrade else {
                    let _ =
                        tx.send(format!("plain {}", head.lines().next().unwrap_or_default()));
                    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain";
                    if stream.write_all(ok.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                };
                let switch = format!("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n");
                let _ = stream.write_all(switch.as_bytes()).await;
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let _ = tx.send(format!("tunnel {}", String::from_utf8_lossy(&buf[..n])));
                return;
            }
        }
    })
    .await;
    (addr, rx)
}

/// `Upgrade: h2c` (and any `HTTP/...` protocol) turns an allowed request
/// into an HTTP connection to the application on which the client's later
/// requests are never decided ("h2c smuggling"): such an upgrade is not
/// relayed; the request goes on as an ordinary one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrades_are_not_relayed() {
    let (app, events) = upgrading_app().await;
    let mut m = inbound_to(app, events, "").await;
    for protocol in ["h2c", "H2C", "websocket, h2c", "HTTP/2.0"] {
        let mut raw = m.plain().await;
        let upgrade = format!(
            "GET /open/x HTTP/1.1\r\nhost: web\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: {protocol}\r\n\
             http2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        raw.write_all(upgrade.as_bytes()).await.unwrap();
        let head = read_head(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{protocol}: {head}");
        assert_eq!(
            event(&mut m.events).await,
            "plain GET /open/x HTTP/1.1",
            "{protocol}"
        );
    }
    // A WebSocket upgrade still is one.
    let mut raw = m.plain().await;
    let upgrade =
        "GET /open/x HTTP/1.1\r\nhost: web\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    raw.write_all(b"frames").await.unwrap();
    assert_eq!(event(&mut m.events).await, "tunnel frames");
    m.proxy.shutdown().await;
}

/// Reads a response head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("a head in time")
            .unwrap();
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_relayed_outbound_to_services_and_egress() {
    let dir = TempDir::new("upgrade-outbound");
    let (app, mut events) = ws_app().await;
    let policy = format!(
        r#"
service chat {{
  authority "chat.prod"
  backend b {{ endpoint {app} }}
  route all {{ to b }}
}}
egress {{
  default deny
  allow local {{ network 127.0.0.1/32  port {port} }}
}}
"#,
        port = app.port()
    );
    std::fs::write(dir.path("p.bundle"), compile(&policy)).unwrap();
    let toml = r#"
[policy]
bundle = "p.bundle"
watch = false
[admin]
listen = "127.0.0.1:0"
[[outbound]]
listen = "127.0.0.1:0"
[limits]
drain-timeout-ms = 2000
"#;
    let proxy = start_proxy(&dir, toml).await;
    let out = proxy.outbound_addrs()[0];
    let forged = [("x-sluice-peer-identity", "spiffe://example.org/ns/x/sa/y")];

    // A declared service, named by Host.
    let tcp = TcpStream::connect(out).await.unwrap();
    let ws = ws_connect(tcp, "ws://chat.prod/ws/svc", &forged)
        .await
        .unwrap();
    assert_eq!(event(&mut events).await, "open /ws/svc");
    exchange(ws, "hello /ws/svc identity=").await;
    assert_eq!(event(&mut events).await, "closed /ws/svc");

    // An allowed egress destination; the application closes first.
    let tcp = TcpStream::connect(out).await.unwrap();
    let ws = ws_connect(tcp, &format!("ws://{app}/ws/egress"), &forged)
        .await
        .unwrap();
    assert_eq!(event(&mut events).await, "open /ws/egress");
    closed_by_the_app(ws).await;
    assert_eq!(event(&mut events).await, "closed /ws/egress");

    // A denied destination: 403, nothing upgraded.
    let tcp = TcpStream::connect(out).await.unwrap();
    match ws_connect(tcp, "ws://127.0.0.1:9/ws/denied", &[]).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(events.try_recv().is_err());
    proxy.shutdown().await;
}
