//! Diagnostics: what `sluice lint` reports, with a code, a severity and a span.

use crate::ast::Span;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Stops compilation.
    Error,
    /// Reported, does not stop compilation.
    Warning,
}

impl Severity {
    /// The lowercase name used in output (`error`, `warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// The diagnostic codes of spec section 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The text does not parse.
    Syntax,
    /// A value out of range, a malformed token value, an unnormalized path.
    InvalidValue,
    /// Two items of one kind with one name.
    DuplicateName,
    /// A once-only statement repeated.
    DuplicateStatement,
    /// A target, backend or failover names nothing.
    UnknownReference,
    /// Two servers cover one port.
    PortConflict,
    /// Two services claim one authority.
    AuthorityConflict,
    /// A regex does not compile or its automaton is too large.
    InvalidRegex,
    /// A bad address or prefix length, or host bits set.
    InvalidNetwork,
    /// An `except` range outside every listed network.
    ExceptOutsideNetwork,
    /// A malformed identity or identity pattern.
    InvalidIdentity,
    /// A malformed host pattern.
    InvalidHost,
    /// `namespace` without a mesh trust domain.
    MissingTrustDomain,
    /// A statement where it does not belong.
    MisplacedStatement,
    /// A service or route without a backend to send to.
    NoBackend,
    /// Failover chains that loop.
    FailoverCycle,
    /// A rule without `to` or without `from`.
    EmptyRule,
    /// A route that no request can reach.
    UnreachableRoute,
    /// A route of a deny-by-default server that no rule targets.
    UnusedRoute,
    /// An allow rule that a deny rule always overrides.
    ShadowedAllow,
    /// Could not read a policy file or directory.
    Io,
}

impl Code {
    /// The code as written in output and conformance files.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::InvalidValue => "invalid-value",
            Code::DuplicateName => "duplicate-name",
            Code::DuplicateStatement => "duplicate-statement",
            Code::UnknownReference => "unknown-reference",
            Code::PortConflict => "port-conflict",
            Code::AuthorityConflict => "authority-conflict",
            Code::InvalidRegex => "invalid-regex",
            Code::InvalidNetwork => "invalid-network",
            Code::ExceptOutsideNetwork => "except-outside-network",
            Code::InvalidIdentity => "invalid-identity",
            Code::InvalidHost => "invalid-host",
            Code::MissingTrustDomain => "missing-trust-domain",
            Code::MisplacedStatement => "misplaced-statement",
            Code::NoBackend => "no-backend",
            Code::FailoverCycle => "failover-cycle",
            Code::EmptyRule => "empty-rule",
            Code::UnreachableRoute => "unreachable-route",
            Code::UnusedRoute => "unused-route",
            Code::ShadowedAllow => "shadowed-allow",
            Code::Io => "io",
        }
    }

    /// The severity this code always has.
    pub fn severity(self) -> Severity {
        match self {
            Code::UnreachableRoute | Code::UnusedRoute | Code::ShadowedAllow => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One reported problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning (always `code.severity()`).
    pub severity: Severity,
    /// The code.
    pub code: Code,
    /// Lowercase message; user input in backticks.
    pub message: String,
    /// Where the problem starts.
    pub span: Span,
    /// Other places the problem involves (`first defined here`), in the
    /// order they are shown; usually none.
    pub labels: Vec<Label>,
}

/// A secondary place of a diagnostic, shown with its own short message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The place.
    pub span: Span,
    /// What is there, lowercase (`first defined here`).
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic with the code's own severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            span,
            labels: Vec::new(),
        }
    }

    /// The same diagnostic, also pointing at `span` with `message`.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Whether this diagnostic stops compilation.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
