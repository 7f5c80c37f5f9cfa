//! Decisions turned into the `CheckResponse`s Envoy enforces.
//!
//! | Outcome                         | `status.code`          | `http_response`                                    |
//! |---------------------------------|------------------------|----------------------------------------------------|
//! | allowed (also audit's would-deny) | 0 `OK`               | `ok_response`, headers per [`AddHeaders`]          |
//! | denied                          | 7 `PERMISSION_DENIED`  | `denied_response`: 403, 404 or 400, `x-sluice-error` |
//! | denied gRPC request             | 7 `PERMISSION_DENIED`  | the same status with `grpc-status` 7, 12 or 13     |
//! | check that cannot be decided    | 3 `INVALID_ARGUMENT`   | 403, `x-sluice-error: bad-check`                   |
//! | no policy loaded                | 14 `UNAVAILABLE`       | 503 (gRPC: `grpc-status` 14), `x-sluice-error: not-ready` |
//!
//! Every denial carries a `denied_response`, so a check Sluice cannot
//! decide fails closed even with Envoy's `failure_mode_allow`.

use crate::check_to_inbound::{CheckView, MapError};
use crate::pb::{
    check_response::HttpResponse, CheckResponse, DeniedHttpResponse, HeaderValue,
    HeaderValueOption, HttpStatus, OkHttpResponse, RpcStatus,
};
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use sluice_runtime::{passes_for_header, Decision, RequestError};

/// The header carrying the peer's identity upstream.
pub const PEER_IDENTITY: &str = "x-sluice-peer-identity";
/// The header carrying the deciding route upstream, as `server.route`.
pub const ROUTE: &str = "x-sluice-route";
/// The header carrying the deciding rule upstream.
pub const RULE: &str = "x-sluice-rule";
/// The header telling the client why Sluice denied the request.
pub const ERROR: &str = "x-sluice-error";

/// gRPC status codes used in `CheckResponse.status`.
const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;

/// Which headers an allowed request gets upstream. One that is turned on
/// is removed when Sluice has no value for it, so a client cannot send its
/// own. `x-sluice-peer-identity` is never passed on from the client, turned
/// on or not, in any spelling that passes for it (`X_Sluice_Peer_Identity`),
/// as `sluice proxy` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddHeaders {
    /// `x-sluice-peer-identity`: the peer's identity.
    pub peer_identity: bool,
    /// `x-sluice-route`: `server.route`.
    pub route: bool,
    /// `x-sluice-rule`: the deciding rule (on an `audit` server, the rule
    /// that would have denied).
    pub rule: bool,
}

/// The answer to a check the runtime decided, or could not decide.
pub fn decided(
    d: &Result<Decision<'_>, RequestError<'_>>,
    view: &CheckView<'_>,
    add: &AddHeaders,
) -> CheckResponse {
    match d {
        Ok(d) if d.allow => allowed(d, view, add),
        Ok(d) => denied(d),
        Err(e) => invalid(&e.to_string(), view.is_grpc()),
    }
}

/// The answer to an allowed request: OK, with the headers `add` asks for,
/// and without any client-sent peer identity.
pub fn allowed(d: &Decision<'_>, view: &CheckView<'_>, add: &AddHeaders) -> CheckResponse {
    let mut ok = OkHttpResponse::default();
    let identity = view.peer().identity.filter(|_| add.peer_identity);
    match identity {
        Some(id) => ok.headers.push(overwrite(PEER_IDENTITY, id.to_owned())),
        None => ok.headers_to_remove.push(PEER_IDENTITY.to_owned()),
    }
    if let Some((_, _, headers)) = view.http() {
        headers.for_each_name(&mut |name| {
            if name != PEER_IDENTITY && passes_for_header(name.as_bytes(), PEER_IDENTITY) {
                ok.headers_to_remove.push(name.to_owned());
            }
        });
    }
    let mut set = |on: bool, name: &str, value: Option<String>| {
        if !on {
            return;
        }
        match value {
            Some(v) => ok.headers.push(overwrite(name, v)),
            None => ok.headers_to_remove.push(name.to_owned()),
        }
    };
    set(
        add.route,
        ROUTE,
        d.route
            .map(|r| format!("{}.{r}", d.server.unwrap_or_default())),
    );
    set(add.rule, RULE, d.rule.map(str::to_owned));
    CheckResponse {
        status: Some(rpc_status(OK, "")),
        http_response: Some(HttpResponse::OkResponse(ok)),
        ..Default::default()
    }
}

/// The answer to a denied request: PERMISSION_DENIED and the response the
/// proxy would have sent (HTTP status and body; for gRPC, the HTTP status
/// with the gRPC status in headers).
pub fn denied(d: &Decision<'_>) -> CheckResponse {
    let told = d.denial();
    let response = match told.grpc {
        Some((grpc, message)) => grpc_denial(told.http_status, grpc, message, told.error),
        None => text_denial(told.http_status, told.body, told.error),
    };
    denial(PERMISSION_DENIED, "denied by policy", response)
}

/// The answer to a check that cannot be mapped to a request.
pub fn bad_check(e: &MapError) -> CheckResponse {
    invalid(&e.to_string(), false)
}

/// The answer while no policy is loaded: UNAVAILABLE, and 503 (or gRPC
/// status 14) to the client.
pub fn not_ready(grpc: bool) -> CheckResponse {
    let response = if grpc {
        grpc_denial(503, 14, "no policy loaded", "not-ready")
    } else {
        text_denial(503, "no policy loaded\n", "not-ready")
    };
    denial(UNAVAILABLE, "no policy loaded", response)
}

/// INVALID_ARGUMENT naming what is wrong; the client gets 403 (or gRPC
/// status 7): the check fails closed.
fn invalid(message: &str, grpc: bool) -> CheckResponse {
    let response = if grpc {
        grpc_denial(
            403,
            7,
            "request denied: the check could not be decided",
            "bad-check",
        )
    } else {
        text_denial(
            403,
            "forbidden: the check could not be decided\n",
            "bad-check",
        )
    };
    denial(INVALID_ARGUMENT, message, response)
}

fn denial(code: i32, message: &str, response: DeniedHttpResponse) -> CheckResponse {
    CheckResponse {
        status: Some(rpc_status(code, message)),
        http_response: Some(HttpResponse::DeniedResponse(response)),
        ..Default::default()
    }
}

/// A plain-text answer, as the proxy sends it.
fn text_denial(status: u16, body: &str, why: &str) -> DeniedHttpResponse {
    DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(status),
        }),
        headers: vec![
            overwrite("content-type", "text/plain; charset=utf-8".to_owned()),
            overwrite(ERROR, why.to_owned()),
        ],
        body: body.to_owned(),
    }
}

/// A gRPC answer: the HTTP status of the denial with the gRPC status in
/// headers, empty body. Envoy turns a local reply to a gRPC request into
/// a trailers-only answer (HTTP 200) whose `grpc-status` is the one given
/// here, which is also the one Envoy derives from the HTTP status (403 → 7,
/// 404 → 12, 400 → 13, 503 → 14); a client Envoy does not take for gRPC
/// (`application/grpc-web`, say) still gets the HTTP status.
fn grpc_denial(http_status: u16, grpc_status: u8, message: &str, why: &str) -> DeniedHttpResponse {
    DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(http_status),
        }),
        headers: vec![
            overwrite("content-type", "application/grpc".to_owned()),
            overwrite("grpc-status", grpc_status.to_string()),
            overwrite("grpc-message", message.to_owned()),
            overwrite(ERROR, why.to_owned()),
        ],
        body: String::new(),
    }
}

fn overwrite(name: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn rpc_status(code: i32, message: &str) -> RpcStatus {
    RpcStatus {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_to_inbound::MapConfig;
    use crate::pb::CheckRequest;
    use sluice_runtime::Reason;

    fn headers(d: &DeniedHttpResponse) -> Vec<(String, String)> {
        d.headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    }

    fn denied_part(r: &CheckResponse) -> &DeniedHttpResponse {
        match &r.http_response {
            Some(HttpResponse::DeniedResponse(d)) => d,
            other => panic!("not a denial: {other:?}"),
        }
    }

    fn decision(allow: bool, reason: Reason) -> Decision<'static> {
        Decision {
            server: Some("web"),
            route: Some("api"),
            rule: allow.then_some("frontend"),
            ..Decision::new(allow, reason)
        }
    }

    /// A check from `principal` (none when empty) carrying `headers`.
    fn check(principal: &str, headers: &[(&str, &str)]) -> CheckRequest {
        use crate::pb::{attribute_context, Address, AttributeContext, EnvoyAddress};
        use crate::pb::{PortSpecifier, SocketAddress};
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(attribute_context::Peer {
                    principal: principal.into(),
                    ..Default::default()
                }),
                destination: Some(attribute_context::Peer {
                    address: Some(EnvoyAddress {
                        address: Some(Address::SocketAddress(SocketAddress {
                            address: "10.0.0.9".into(),
                            port_specifier: Some(PortSpecifier::PortValue(8080)),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        method: "GET".into(),
                        path: "/".into(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| ((*k).into(), (*v).into()))
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn ok_part(r: &CheckResponse) -> &OkHttpResponse {
        match &r.http_response {
            Some(HttpResponse::OkResponse(ok)) => ok,
            other => panic!("not ok: {other:?}"),
        }
    }

    fn set_headers(ok: &OkHttpResponse) -> Vec<(&str, &str)> {
        ok.headers
            .iter()
            .map(|h| {
                let h = h.header.as_ref().unwrap();
                (h.key.as_str(), h.value.as_str())
            })
            .collect()
    }

    #[test]
    fn an_allowed_request_is_ok_with_the_chosen_headers() {
        let d = decision(true, Reason::Rule);
        let all = AddHeaders {
            peer_identity: true,
            route: true,
            rule: true,
        };
        let c = check("spiffe://example.org/a", &[]);
        let view = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        let r = allowed(&d, &view, &all);
        assert_eq!(r.status.as_ref().unwrap().code, OK);
        let ok = ok_part(&r);
        assert_eq!(
            set_headers(ok),
            [
                (PEER_IDENTITY, "spiffe://example.org/a"),
                (ROUTE, "web.api"),
                (RULE, "frontend")
            ]
        );
        assert!(ok.headers_to_remove.is_empty());
        assert!(ok
            .headers
            .iter()
            .all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32));
        // Without an identity or a rule, client-sent values are removed.
        let d = Decision { rule: None, ..d };
        let c = check("", &[]);
        let view = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        let ok_of = allowed(&d, &view, &all);
        assert_eq!(ok_part(&ok_of).headers_to_remove, [PEER_IDENTITY, RULE]);
        // Route and rule headers are Sluice's only when turned on.
        let ok_of = allowed(&d, &view, &AddHeaders::default());
        let ok = ok_part(&ok_of);
        assert!(ok.headers.is_empty());
        assert_eq!(ok.headers_to_remove, [PEER_IDENTITY]);
    }

    #[test]
    fn a_forged_peer_identity_never_reaches_the_application() {
        let d = decision(true, Reason::Rule);
        let forged = [
            ("x-sluice-peer-identity", "spiffe://evil/a"),
            ("x_sluice_peer_identity", "spiffe://evil/b"),
            ("x-sluice-peer_identity", "spiffe://evil/c"),
            ("x-tenant", "acme"),
        ];
        for (principal, on) in [("", false), ("", true), ("spiffe://example.org/a", true)] {
            let c = check(principal, &forged);
            let view = CheckView::from_check(&c, &MapConfig::default()).unwrap();
            let add = AddHeaders {
                peer_identity: on,
                ..AddHeaders::default()
            };
            let ok_of = allowed(&d, &view, &add);
            let ok = ok_part(&ok_of);
            let mut removed = ok.headers_to_remove.clone();
            removed.sort();
            let mut want = vec!["x-sluice-peer_identity", "x_sluice_peer_identity"];
            if principal.is_empty() || !on {
                want.push(PEER_IDENTITY);
            }
            want.sort_unstable();
            assert_eq!(removed, want, "{principal:?} {on}");
            let set = set_headers(ok);
            if principal.is_empty() || !on {
                assert!(set.is_empty());
            } else {
                assert_eq!(set, [(PEER_IDENTITY, principal)]);
            }
        }
    }

    #[test]
    fn denials_carry_the_proxys_status_and_reason() {
        for (status, reason, why, body) in [
            (403, Reason::Default, "forbidden", "forbidden by policy\n"),
            (404, Reason::NoRoute, "no-route", "no route\n"),
            (400, Reason::BadPath, "bad-path", "bad request path\n"),
        ] {
            let d = Decision {
                http_status: Some(status),
                ..decision(false, reason)
            };
            let r = denied(&d);
            assert_eq!(r.status.as_ref().unwrap().code, PERMISSION_DENIED);
            let part = denied_part(&r);
            assert_eq!(part.status.as_ref().unwrap().code, i32::from(status));
            assert_eq!(part.body, body);
            assert!(headers(part).contains(&(ERROR.into(), why.into())));
        }
    }

    #[test]
    fn grpc_denials_answer_in_grpc() {
        let d = Decision {
            http_status: Some(404),
            grpc_status: Some(12),
            ..decision(false, Reason::NoRoute)
        };
        let part_of = denied(&d);
        let part = denied_part(&part_of);
        assert_eq!(part.status.as_ref().unwrap().code, 404);
        let h = headers(part);
        assert!(h.contains(&("grpc-status".into(), "12".into())));
        assert!(h.contains(&("content-type".into(), "application/grpc".into())));
        assert!(h.contains(&(ERROR.into(), "no-route".into())));
    }

    #[test]
    fn undecidable_checks_fail_closed() {
        let r = bad_check(&MapError::NoPort);
        assert_eq!(r.status.as_ref().unwrap().code, INVALID_ARGUMENT);
        assert!(r
            .status
            .as_ref()
            .unwrap()
            .message
            .contains("no destination port"));
        let part = denied_part(&r);
        assert_eq!(part.status.as_ref().unwrap().code, 403);
        assert!(headers(part).contains(&(ERROR.into(), "bad-check".into())));
        let r = not_ready(true);
        assert_eq!(r.status.as_ref().unwrap().code, UNAVAILABLE);
        assert!(headers(denied_part(&r)).contains(&("grpc-status".into(), "14".into())));
        let r = not_ready(false);
        assert_eq!(denied_part(&r).status.as_ref().unwrap().code, 503);
    }
}
