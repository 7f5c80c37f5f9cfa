//! How a denied request is answered: the status, `x-sluice-error` value,
//! body and gRPC message that the proxy and the external authorizer both
//! send, so the two never tell a denial differently.

use crate::decision::{Decision, Reason};

/// What a denied request is answered with, from its [`Decision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The HTTP status: the decision's, else 403.
    pub http_status: u16,
    /// The `x-sluice-error` value: `forbidden`, `no-route` or `bad-path`.
    pub error: &'static str,
    /// The plain-text body of an HTTP answer, one line.
    pub body: &'static str,
    /// For a request answered in gRPC: its status and `grpc-message`.
    pub grpc: Option<(u8, &'static str)>,
}

impl Decision<'_> {
    /// How this decision is told to the client when it denies.
    pub fn denial(&self) -> Denial {
        let error = match self.reason {
            Reason::NoRoute => "no-route",
            Reason::BadPath => "bad-path",
            _ => "forbidden",
        };
        let http_status = self.http_status.unwrap_or(403);
        let body = match http_status {
            404 => "no route\n",
            400 => "bad request path\n",
            _ => "forbidden by policy\n",
        };
        let grpc = self.grpc_status.map(|status| {
            let message = match status {
                7 => "request denied by policy",
                12 => "no route for this method",
                _ => "malformed request path",
            };
            (status, message)
        });
        Denial {
            http_status,
            error,
            body,
            grpc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_by_reason_and_status() {
        let mut d = Decision::new(false, Reason::NoRoute);
        d.http_status = Some(404);
        let n = d.denial();
        assert_eq!(
            (n.http_status, n.error, n.body, n.grpc),
            (404, "no-route", "no route\n", None)
        );
        d.grpc_status = Some(12);
        assert_eq!(d.denial().grpc, Some((12, "no route for this method")));
        let mut d = Decision::new(false, Reason::BadPath);
        d.http_status = Some(400);
        d.grpc_status = Some(13);
        let n = d.denial();
        assert_eq!((n.error, n.body), ("bad-path", "bad request path\n"));
        assert_eq!(n.grpc, Some((13, "malformed request path")));
        let d = Decision::new(false, Reason::Default);
        let n = d.denial();
        assert_eq!(
            (n.http_status, n.error, n.body),
            (403, "forbidden", "forbidden by policy\n")
        );
    }
}
