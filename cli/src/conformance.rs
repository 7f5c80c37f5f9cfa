//! Conformance files (spec section 11): finding, running and checking them.
//!
//! A file is TOML with a `policy` string, or (an extension for example
//! policies) `policy-file = "x.sluice"`, a path relative to the TOML file that
//! may also name a directory of `.sluice` files; and either `[[case]]` tables
//! or `[[diagnostic]]` tables.
//!
//! - `[[case]]`: `name`, `request` (spec section 10), `expect` (decision
//!   fields, at least one; `""` expects null or absent, numbers compare numerically,
//!   `backends` compares as the list of `{name, weight}`). Extension: an
//!   `expect` of only `error = "TEXT"` expects the request to be rejected
//!   with a message containing TEXT. The policy must compile without errors;
//!   if it does not, every case fails.
//! - `[[diagnostic]]`: `code`, `severity`, optional `line`. Each expectation
//!   consumes one reported diagnostic. More warnings may be reported; more
//!   errors only with a code some expectation has; any other error is one
//!   more failure.
//!
//! Every case and every expected diagnostic counts as one. Unknown keys are
//! failures (they are usually typos). The policy of a `policy` string is
//! shown as `<policy>`.
//!
//! Each file whose cases ran also has a [`Coverage`]: the routes, rules and
//! egress rules of its policy, and whether some case's decision named them
//! (`sluice test --coverage`, defined in `docs/coverage.md`).

use crate::decide::Decider;
use crate::json::{self, DecisionJson, DecisionJsonExt, DECISION_FIELDS};
use crate::policy::{self, Parsed};
use serde_json::Value;
use sluice_compiler::Config;
use sluice_lang::ast::{EgressStmt, Item, ServerStmt, ServiceStmt, SourceFile, Span};
use sluice_lang::{Diagnostic, Policy};
use sluice_runtime::{AlignedBytes, NoTrace};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Display path of a policy given inline as a `policy` string.
pub const INLINE_POLICY: &str = "<policy>";

/// Counts of passed and failed expectations, with one message per failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Expectations that held.
    pub passed: usize,
    /// Expectations that did not (plus unexpected errors and broken files).
    pub failed: usize,
    /// Failure messages, one line each, starting with the file.
    pub messages: Vec<String>,
    /// Conformance files run.
    pub files: usize,
    /// Coverage of each policy whose cases ran, in the order they first ran:
    /// one per file with a `policy` string, one per policy folder or file
    /// for all the files whose `policy-file` names it.
    pub coverage: Vec<Coverage>,
}

impl Outcome {
    fn pass(&mut self) {
        self.passed += 1;
    }

    fn fail(&mut self, message: String) {
        self.failed += 1;
        self.messages.push(message);
    }

    /// Adds another outcome's counts and messages to this one.
    pub fn merge(&mut self, other: Outcome) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.messages.extend(other.messages);
        self.files += other.files;
        for coverage in other.coverage {
            match self.coverage.iter_mut().find(|c| c.same_policy(&coverage)) {
                Some(existing) => existing.absorb(coverage),
                None => self.coverage.push(coverage),
            }
        }
    }
}

/// `N passed, N failed`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs every conformance file under `paths` (files, or directories searched
/// recursively for `*.toml`), calling `report` with each failure message as
/// soon as its file is done. A directory without any conformance file is
/// one failure.
pub fn run_paths(paths: &[PathBuf], report: &mut dyn FnMut(&str)) -> Outcome {
    let mut total = Outcome::default();
    for path in paths {
        let mut files = Vec::new();
        let mut outcome = Outcome::default();
        match find_files(path, true, &mut files) {
            Err(e) => outcome.fail(format!("{}: cannot read: {e}", path.display())),
            Ok(()) if files.is_empty() => outcome.fail(format!(
                "{}: no conformance files (`*.toml`) in this folder",
                path.display()
            )),
            Ok(()) => {}
        }
        for message in &outcome.messages {
            report(message);
        }
        total.merge(outcome);
        for file in files {
            let mut outcome = run_file(&file);
            outcome.files = 1;
            for message in &outcome.messages {
                report(message);
            }
            total.merge(outcome);
        }
    }
    total
}

/// Collects `path` if it is a file, else the `*.toml` files below it, in
/// byte order of their paths. Symbolic links to directories are not followed.
pub fn find_files(path: &Path, explicit: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        if explicit || path.extension().is_some_and(|e| e == "toml") {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_symlink() && is_dir(&path) {
            continue;
        }
        entries.push(path);
    }
    entries.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    for entry in entries {
        find_files(&entry, false, out)?;
    }
    Ok(())
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Runs one conformance file.
pub fn run_file(path: &Path) -> Outcome {
    let display = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let base = path.parent().unwrap_or(Path::new("."));
            run_toml(&display, &text, base)
        }
        Err(e) => {
            let mut outcome = Outcome::default();
            outcome.fail(format!("{display}: cannot read: {e}"));
            outcome
        }
    }
}

const FILE_KEYS: &[&str] = &["policy", "policy-file", "case", "diagnostic"];
const CASE_KEYS: &[&str] = &["name", "request", "expect"];
const DIAGNOSTIC_KEYS: &[&str] = &["code", "severity", "line"];

/// Runs the text of a conformance file shown as `display`; `policy-file`
/// paths are relative to `base`.
pub fn run_toml(display: &str, text: &str, base: &Path) -> Outcome {
    let mut outcome = Outcome::default();
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e
                .span()
                .map(|s| format!(":{}", line_of(text, s.start)))
                .unwrap_or_default();
            outcome.fail(format!(
                "{display}{at}: not a valid conformance file: {}",
                e.message().trim()
            ));
            return outcome;
        }
    };
    let cases = match tables(&table, "case") {
        Ok(c) => c,
        Err(e) => return broken(display, &e, 1),
    };
    let diagnostics = match tables(&table, "diagnostic") {
        Ok(d) => d,
        Err(e) => return broken(display, &e, 1),
    };
    let count = (cases.len() + diagnostics.len()).max(1);
    if let Some(key) = table.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
        return broken(display, &format!("unknown key `{key}`"), count);
    }
    if !cases.is_empty() && !diagnostics.is_empty() {
        return broken(
            display,
            "a file has either `[[case]]` or `[[diagnostic]]` tables, not both",
            count,
        );
    }
    if cases.is_empty() && diagnostics.is_empty() {
        return broken(display, "no `[[case]]` or `[[diagnostic]]` tables", 1);
    }
    let parsed = match policy_of(&table, base) {
        Ok(p) => p,
        Err(e) => return broken(display, &e, count),
    };
    if diagnostics.is_empty() {
        run_cases(display, &parsed, &cases, &mut outcome);
        if let (Some(toml::Value::String(file)), Some(coverage)) =
            (table.get("policy-file"), outcome.coverage.last_mut())
        {
            coverage.policy_file = std::fs::canonicalize(base.join(file)).ok();
        }
    } else {
        run_diagnostics(display, &parsed, &diagnostics, &mut outcome);
    }
    outcome
}

/// An outcome of `count` failures for a file that cannot be run.
fn broken(display: &str, message: &str, count: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let fails = if count == 1 {
        String::new()
    } else {
        format!(" ({count} expectations fail)")
    };
    outcome.fail(format!("{display}: {message}{fails}"));
    outcome.failed = count;
    outcome
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The array of tables under `key` (absent: none).
fn tables<'t>(table: &'t toml::Table, key: &str) -> Result<Vec<&'t toml::Table>, String> {
    match table.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_table()
                    .ok_or_else(|| format!("`{key}` must be an array of tables (`[[{key}]]`)"))
            })
            .collect(),
        Some(_) => Err(format!("`{key}` must be an array of tables (`[[{key}]]`)")),
    }
}

/// Parses the file's policy: the `policy` string or the `policy-file` path.
fn policy_of(table: &toml::Table, base: &Path) -> Result<Parsed, String> {
    match (table.get("policy"), table.get("policy-file")) {
        (Some(toml::Value::String(text)), None) => Ok(policy::parse_str(INLINE_POLICY, text)),
        (None, Some(toml::Value::String(file))) => policy::load(&base.join(file)),
        (Some(_), Some(_)) => Err("give either `policy` or `policy-file`, not both".into()),
        (None, None) => Err("no `policy` or `policy-file`".into()),
        (Some(_), None) => Err("`policy` must be a string".into()),
        (None, Some(_)) => Err("`policy-file` must be a string".into()),
    }
}

/// `FILE:LINE:COLUMN: error[code]: message` for a diagnostic.
pub fn locate(files: &[SourceFile], d: &Diagnostic) -> String {
    let file = files
        .get(d.span.file as usize)
        .map_or("?", |f| f.path.as_str());
    format!(
        "{file}:{}:{}: {}[{}]: {}",
        d.span.line,
        d.span.column,
        d.severity.as_str(),
        d.code.as_str(),
        d.message
    )
}

fn run_cases(display: &str, parsed: &Parsed, cases: &[&toml::Table], outcome: &mut Outcome) {
    let n = cases.len();
    let compiled = match policy::compile(parsed, &Config::default()) {
        Ok(c) => c,
        Err(diags) => {
            outcome.failed += n;
            outcome.messages.push(format!(
                "{display}: the policy does not compile, so its {} fail:",
                policy::plural(n, "case")
            ));
            for d in diags.iter().filter(|d| d.is_error()) {
                outcome
                    .messages
                    .push(format!("{display}:   {}", locate(parsed.files(), d)));
            }
            return;
        }
    };
    let bytes = AlignedBytes::new(&compiled.bundle);
    let bundle = match policy::bundle(&bytes, "the compiled policy") {
        Ok(b) => b,
        Err(e) => {
            outcome.failed += n;
            outcome.messages.push(format!(
                "{display}: {e}, so its {} fail",
                policy::plural(n, "case")
            ));
            return;
        }
    };
    let mut decider = Decider::new(&bundle);
    let mut taken = Taken::default();
    for (i, case) in cases.iter().enumerate() {
        let name = match case.get("name") {
            Some(toml::Value::String(s)) => format!("case `{s}`"),
            _ => format!("case #{}", i + 1),
        };
        let problems = run_case(&mut decider, case, &mut taken);
        if problems.is_empty() {
            outcome.pass();
        } else {
            outcome.fail(format!("{display}: {name}: {}", problems.join("; ")));
        }
    }
    outcome
        .coverage
        .push(Coverage::of(display, &parsed.policy, &taken));
}

/// The problems of one case (empty when it passes); what its decision
/// named goes into `taken`.
fn run_case(decider: &mut Decider<'_, '_>, case: &toml::Table, taken: &mut Taken) -> Vec<String> {
    if let Some(key) = case.keys().find(|k| !CASE_KEYS.contains(&k.as_str())) {
        return vec![format!("unknown key `{key}`")];
    }
    if !matches!(case.get("name"), Some(toml::Value::String(_))) {
        return vec!["a case needs a `name` string".into()];
    }
    let Some(toml::Value::Table(expect)) = case.get("expect") else {
        return vec!["a case needs an `expect` table".into()];
    };
    let request = match case.get("request") {
        Some(r @ toml::Value::Table(_)) => r,
        _ => return vec!["a case needs a `request` table".into()],
    };
    let result = serde_json::to_value(request)
        .map_err(|e| e.to_string())
        .and_then(|v| json::request_from_value(&v))
        .map_err(|e| format!("bad request: {e}"))
        .and_then(|r| {
            let decision = decider
                .decide(&r, &mut NoTrace)
                .map_err(|e| e.to_string())?;
            taken.add(matches!(r, json::Request::Inbound(_)), &decision);
            Ok(decision)
        });
    check_expect(expect, &result)
}

/// Compares a decision (or the error the request got) with an `expect`
/// table; returns one message per mismatch.
pub fn check_expect(expect: &toml::Table, result: &Result<DecisionJson, String>) -> Vec<String> {
    if expect.is_empty() {
        return vec!["the `expect` table is empty, so the case checks nothing".into()];
    }
    if let Some(wanted) = expect.get("error") {
        let Some(wanted) = wanted.as_str() else {
            return vec!["`error` must be a string".into()];
        };
        if expect.len() > 1 {
            return vec!["`error` cannot be combined with decision fields".into()];
        }
        return match result {
            Err(message) if message.contains(wanted) => Vec::new(),
            Err(message) => vec![format!(
                "`error`: expected a message containing {wanted:?}, got {message:?}"
            )],
            Ok(d) => vec![format!(
                "`error`: expected an error containing {wanted:?}, got the decision {}",
                d.to_line()
            )],
        };
    }
    let decision = match result {
        Ok(d) => d.to_value(),
        Err(message) => return vec![format!("no decision: {message}")],
    };
    let mut problems = Vec::new();
    for (field, wanted) in expect {
        if !DECISION_FIELDS.contains(&field.as_str()) {
            problems.push(format!("`{field}` is not a decision field"));
            continue;
        }
        let wanted = serde_json::to_value(wanted).unwrap_or(Value::Null);
        let actual = decision.get(field).unwrap_or(&Value::Null);
        if !expected_matches(&wanted, actual) {
            problems.push(format!("`{field}`: expected {wanted}, got {actual}"));
        }
    }
    problems
}

/// Whether `actual` is what `expected` asks for: `""` is null (or an empty
/// list), numbers compare numerically, lists and tables element-wise.
pub fn expected_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), actual) if s.is_empty() => {
            actual.is_null()
                || actual.as_array().is_some_and(Vec::is_empty)
                || actual.as_str() == Some("")
        }
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| expected_matches(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| expected_matches(x, y)))
        }
        (a, b) => a == b,
    }
}

/// Whether a route belongs to a server or to a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOwner {
    /// `server NAME { route ... }`, named by inbound decisions.
    Server,
    /// `service NAME { route ... }`, named by outbound decisions.
    Service,
}

/// What the decisions of a file's cases named.
#[derive(Debug, Default)]
struct Taken {
    routes: HashSet<(RouteOwner, String, String)>,
    rules: HashSet<String>,
    egress_rules: HashSet<String>,
}

impl Taken {
    /// Records the route and rule a decision names; the rule of an outbound
    /// decision is an egress rule.
    fn add(&mut self, inbound: bool, d: &DecisionJson) {
        let owner = match (&d.server, &d.service) {
            (Some(server), _) => Some((RouteOwner::Server, server)),
            (None, Some(service)) => Some((RouteOwner::Service, service)),
            (None, None) => None,
        };
        if let (Some((owner, parent)), Some(route)) = (owner, &d.route) {
            self.routes.insert((owner, parent.clone(), route.clone()));
        }
        if let Some(rule) = &d.rule {
            let rules = if inbound {
                &mut self.rules
            } else {
                &mut self.egress_rules
            };
            rules.insert(rule.clone());
        }
    }
}

/// A declared route, rule or egress rule and whether a case took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoveredItem {
    /// For a route, whether its parent is a server or a service.
    pub owner: Option<RouteOwner>,
    /// For a route, its server or service.
    pub parent: Option<String>,
    /// The route's or rule's name.
    pub name: String,
    /// The policy source file it is declared in.
    pub source: String,
    /// The 1-based line of its `route`, `allow` or `deny` keyword.
    pub line: u32,
    /// Whether some case's decision named it.
    pub taken: bool,
}

impl CoveredItem {
    /// `web.metrics` for a route, the name for a rule.
    pub fn display_name(&self) -> String {
        match &self.parent {
            Some(parent) => format!("{parent}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The routes, rules and egress rules of one policy, in declaration order,
/// each marked taken or not by the cases of the conformance files run on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The (first) conformance file, as displayed in results.
    pub file: String,
    /// Every conformance file whose cases ran on this policy, `file` first.
    pub files: Vec<String>,
    /// The policy's file or folder (canonical) when given by `policy-file`;
    /// files naming the same one share one report.
    pub policy_file: Option<PathBuf>,
    /// Whether the policy has more than one source file.
    pub many_sources: bool,
    /// Server and service routes (not the implicit route of a server without routes).
    pub routes: Vec<CoveredItem>,
    /// Inbound `allow`/`deny` rules.
    pub rules: Vec<CoveredItem>,
    /// Rules of the `egress` block.
    pub egress_rules: Vec<CoveredItem>,
}

impl Coverage {
    /// The items of `policy`, marked with what `taken` holds.
    fn of(file: &str, policy: &Policy, taken: &Taken) -> Coverage {
        let source = |span: &Span| {
            policy
                .files
                .get(span.file as usize)
                .map_or_else(|| "?".to_string(), |f| f.path.clone())
        };
        let item = |owner: Option<RouteOwner>,
                    parent: Option<&str>,
                    name: &str,
                    span: &Span,
                    taken: bool| {
            CoveredItem {
                owner,
                parent: parent.map(str::to_string),
                name: name.to_string(),
                source: source(span),
                line: span.line,
                taken,
            }
        };
        let route = |owner: RouteOwner, parent: &str, r: &sluice_lang::ast::Route| {
            let key = (owner, parent.to_string(), r.name.node.clone());
            item(
                Some(owner),
                Some(parent),
                &r.name.node,
                &r.span,
                taken.routes.contains(&key),
            )
        };
        let mut coverage = Coverage {
            file: file.to_string(),
            files: vec![file.to_string()],
            policy_file: None,
            many_sources: policy.files.len() > 1,
            routes: Vec::new(),
            rules: Vec::new(),
            egress_rules: Vec::new(),
        };
        for it in &policy.items {
            match it {
                Item::Server(s) => {
                    for stmt in &s.stmts {
                        if let ServerStmt::Route(r) = &stmt.node {
                            coverage
                                .routes
                                .push(route(RouteOwner::Server, &s.name.node, r));
                        }
                    }
                }
                Item::Service(s) => {
                    for stmt in &s.stmts {
                        if let ServiceStmt::Route(r) = &stmt.node {
                            coverage
                                .routes
                                .push(route(RouteOwner::Service, &s.name.node, r));
                        }
                    }
                }
                Item::Rule(r) => {
                    let name = &r.name.node;
                    coverage.rules.push(item(
                        None,
                        None,
                        name,
                        &r.span,
                        taken.rules.contains(name),
                    ));
                }
                Item::Egress(e) => {
                    for stmt in &e.stmts {
                        if let EgressStmt::Rule(r) = &stmt.node {
                            let name = &r.name.node;
                            let hit = taken.egress_rules.contains(name);
                            coverage
                                .egress_rules
                                .push(item(None, None, name, &r.span, hit));
                        }
                    }
                }
                Item::Mesh(_) => {}
            }
        }
        coverage
    }

    /// Whether `other` covers the same policy file or folder, with the same
    /// items.
    fn same_policy(&self, other: &Coverage) -> bool {
        let names = |c: &Coverage| -> Vec<(String, String, u32)> {
            [&c.routes, &c.rules, &c.egress_rules]
                .into_iter()
                .flatten()
                .map(|i| (i.display_name(), i.source.clone(), i.line))
                .collect()
        };
        self.policy_file.is_some()
            && self.policy_file == other.policy_file
            && names(self) == names(other)
    }

    /// Adds the files and the taken items of `other`, a coverage of the same
    /// policy ([`Coverage::same_policy`]).
    fn absorb(&mut self, other: Coverage) {
        for file in other.files {
            if !self.files.contains(&file) {
                self.files.push(file);
            }
        }
        for (mine, theirs) in [
            (&mut self.routes, other.routes),
            (&mut self.rules, other.rules),
            (&mut self.egress_rules, other.egress_rules),
        ] {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.taken |= t.taken;
            }
        }
    }

    /// The human report: a header line with the counts, then one indented
    /// line per item no case took, e.g. `  route web.metrics (line 7)`.
    pub fn to_text(&self) -> String {
        let lists = [
            ("route", &self.routes),
            ("rule", &self.rules),
            ("egress rule", &self.egress_rules),
        ];
        let counts: Vec<String> = lists
            .iter()
            .map(|(what, items)| {
                let untaken = items.iter().filter(|i| !i.taken).count();
                format!("{untaken} of {}", policy::plural(items.len(), what))
            })
            .collect();
        let any = lists
            .iter()
            .any(|(_, items)| items.iter().any(|i| !i.taken));
        let mut text = format!(
            "coverage {}: {} not taken{}",
            self.files.join(", "),
            counts.join(", "),
            if any { ":" } else { "" }
        );
        for (what, items) in lists {
            for i in items.iter().filter(|i| !i.taken) {
                let at = if self.many_sources {
                    format!("{}:{}", i.source, i.line)
                } else {
                    format!("line {}", i.line)
                };
                text.push_str(&format!("\n  {what} {} ({at})", i.display_name()));
            }
        }
        text
    }

    /// The JSON report: `{"file", "files", "routes", "rules", "egress_rules"}`, each
    /// list `{"total", "taken", "untaken": [...]}`; an untaken route is
    /// `{"server" or "service", "route", "source", "line"}`, a rule
    /// `{"rule", "source", "line"}`.
    pub fn to_json(&self) -> Value {
        let list = |items: &[CoveredItem]| {
            let untaken: Vec<Value> = items
                .iter()
                .filter(|i| !i.taken)
                .map(|i| {
                    let mut o = serde_json::Map::new();
                    match (i.owner, &i.parent) {
                        (Some(owner), Some(parent)) => {
                            let key = match owner {
                                RouteOwner::Server => "server",
                                RouteOwner::Service => "service",
                            };
                            o.insert(key.into(), parent.clone().into());
                            o.insert("route".into(), i.name.clone().into());
                        }
                        _ => {
                            o.insert("rule".into(), i.name.clone().into());
                        }
                    }
                    o.insert("source".into(), i.source.clone().into());
                    o.insert("line".into(), i.line.into());
                    Value::Object(o)
                })
                .collect();
            serde_json::json!({
                "total": items.len(),
                "taken": items.len() - untaken.len(),
                "untaken": untaken,
            })
        };
        serde_json::json!({
            "file": self.file,
            "files": self.files,
            "routes": list(&self.routes),
            "rules": list(&self.rules),
            "egress_rules": list(&self.egress_rules),
        })
    }
}

/// One `[[diagnostic]]` expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedDiagnostic {
    /// The code, e.g. `port-conflict`.
    pub code: String,
    /// `error` or `warning`.
    pub severity: String,
    /// The 1-based line, when given.
    pub line: Option<u64>,
}

impl fmt::Display for ExpectedDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.code)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        Ok(())
    }
}

/// Which expectations were not met and which reported diagnostics were not allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiagnosticCheck {
    /// Indices of expectations no reported diagnostic met.
    pub missing: Vec<usize>,
    /// Indices of reported errors that no expectation allows.
    pub unexpected: Vec<usize>,
}

/// Matches reported diagnostics against expectations, each reported
/// diagnostic meeting at most one expectation (those with a `line` first).
pub fn check_diagnostics(
    expected: &[ExpectedDiagnostic],
    actual: &[Diagnostic],
) -> DiagnosticCheck {
    let mut used = vec![false; actual.len()];
    let mut met = vec![false; expected.len()];
    for with_line in [true, false] {
        for (i, e) in expected.iter().enumerate() {
            if e.line.is_some() != with_line {
                continue;
            }
            let found = actual.iter().enumerate().position(|(j, d)| {
                !used[j]
                    && d.code.as_str() == e.code
                    && d.severity.as_str() == e.severity
                    && match e.line {
                        Some(l) => u64::from(d.span.line) == l,
                        None => true,
                    }
            });
            if let Some(j) = found {
                used[j] = true;
                met[i] = true;
            }
        }
    }
    DiagnosticCheck {
        missing: (0..expected.len()).filter(|&i| !met[i]).collect(),
        unexpected: (0..actual.len())
            .filter(|&j| {
                !used[j]
                    && actual[j].is_error()
                    && !expected.iter().any(|e| e.code == actual[j].code.as_str())
            })
            .collect(),
    }
}

/// Reads one `[[diagnostic]]` table.
fn expected_diagnostic(table: &toml::Table) -> Result<ExpectedDiagnostic, String> {
    if let Some(key) = table
        .keys()
        .find(|k| !DIAGNOSTIC_KEYS.contains(&k.as_str()))
    {
        return Err(format!("unknown key `{key}`"));
    }
    let code = match table.get("code") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => return Err("a diagnostic needs a `code` string".into()),
    };
    let severity = match table.get("severity") {
        Some(toml::Value::String(s)) if s == "error" || s == "warning" => s.clone(),
        _ => {
            return Err(format!(
                "diagnostic `{code}` needs a `severity` of `error` or `warning`"
            ))
        }
    };
    let line = match table.get("line") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 1 => Some(*n as u64),
        Some(_) => {
            return Err(format!(
                "diagnostic `{code}`: `line` must be a positive integer"
            ))
        }
    };
    Ok(ExpectedDiagnostic {
        code,
        severity,
        line,
    })
}

fn run_diagnostics(display: &str, parsed: &Parsed, tables: &[&toml::Table], outcome: &mut Outcome) {
    let mut expected = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        match expected_diagnostic(table) {
            Ok(e) => expected.push(e),
            Err(e) => outcome.fail(format!("{display}: diagnostic #{}: {e}", i + 1)),
        }
    }
    let reported = policy::lint(parsed, &Config::default());
    let check = check_diagnostics(&expected, &reported);
    outcome.passed += expected.len() - check.missing.len();
    for &i in &check.missing {
        let e = &expected[i];
        let same: Vec<String> = reported
            .iter()
            .filter(|d| d.code.as_str() == e.code)
            .map(|d| format!("{} at line {}", d.severity.as_str(), d.span.line))
            .collect();
        let reported_as = if same.is_empty() {
            "not reported".to_string()
        } else {
            format!("reported as {}", same.join(", "))
        };
        outcome.fail(format!("{display}: missing diagnostic {e} ({reported_as})"));
    }
    for &j in &check.unexpected {
        outcome.fail(format!(
            "{display}: unexpected diagnostic {}",
            locate(parsed.files(), &reported[j])
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::BackendJson;
    use sluice_lang::{Code, Span};

    fn expect(text: &str) -> toml::Table {
        let t: toml::Table = toml::from_str(&format!("expect = {text}")).unwrap();
        t["expect"].as_table().unwrap().clone()
    }

    fn decision() -> DecisionJson {
        DecisionJson {
            decision: "allow",
            reason: "service",
            server: None,
            route: Some("main".into()),
            rule: None,
            audit: false,
            http_status: None,
            grpc_status: None,
            service: Some("payments".into()),
            backends: Some(vec![
                BackendJson {
                    name: "stable".into(),
                    weight: 90,
                },
                BackendJson {
                    name: "canary".into(),
                    weight: 10,
                },
            ]),
            timeout_ms: Some(2000),
        }
    }

    #[test]
    fn matching_fields() {
        let ok = Ok(decision());
        assert!(check_expect(
            &expect(r#"{ decision = "allow", reason = "service", route = "main" }"#),
            &ok
        )
        .is_empty());
        assert!(check_expect(
            &expect(r#"{ rule = "", server = "", http_status = "", audit = false }"#),
            &ok
        )
        .is_empty());
        assert!(check_expect(&expect("{ timeout_ms = 2000 }"), &ok).is_empty());
        assert!(check_expect(&expect("{ timeout_ms = 2000.0 }"), &ok).is_empty());
        assert!(check_expect(
            &expect(r#"{ backends = [{ name = "stable", weight = 90 }, { name = "canary", weight = 10 }] }"#),
            &ok
        )
        .is_empty());
    }

    #[test]
    fn mismatching_fields() {
        let ok = Ok(decision());
        assert_eq!(
            check_expect(&expect(r#"{ route = "beta", timeout_ms = 500 }"#), &ok),
            [
                "`route`: expected \"beta\", got \"main\"",
                "`timeout_ms`: expected 500, got 2000"
            ]
        );
        assert_eq!(
            check_expect(&expect(r#"{ rule = "x" }"#), &ok),
            ["`rule`: expected \"x\", got null"]
        );
        assert_eq!(
            check_expect(&expect(r#"{ route = "" }"#), &ok),
            ["`route`: expected \"\", got \"main\""]
        );
        assert_eq!(check_expect(&expect(r#"{ audit = true }"#), &ok).len(), 1);
        assert_eq!(
            check_expect(&expect(r#"{ timeout_ms = "2000" }"#), &ok).len(),
            1
        );
        assert_eq!(
            check_expect(
                &expect(r#"{ backends = [{ name = "stable", weight = 90 }] }"#),
                &ok
            )
            .len(),
            1
        );
        assert_eq!(
            check_expect(
                &expect(
                    r#"{ backends = [{ name = "stable", weight = 90 }, { name = "canary" }] }"#
                ),
                &ok
            )
            .len(),
            1
        );
        assert_eq!(check_expect(&expect(r#"{ backends = "" }"#), &ok).len(), 1);
        assert_eq!(
            check_expect(&expect(r#"{ rout = "main" }"#), &ok),
            ["`rout` is not a decision field"]
        );
        assert_eq!(
            check_expect(&expect("{}"), &ok),
            ["the `expect` table is empty, so the case checks nothing"]
        );
    }

    #[test]
    fn empty_backends_match_empty_string() {
        let mut d = decision();
        d.backends = None;
        assert!(check_expect(&expect(r#"{ backends = "" }"#), &Ok(d.clone())).is_empty());
        d.backends = Some(Vec::new());
        assert!(check_expect(&expect(r#"{ backends = "" }"#), &Ok(d)).is_empty());
    }

    #[test]
    fn request_errors() {
        let err: Result<DecisionJson, String> = Err("incomplete request: authority".into());
        assert_eq!(
            check_expect(&expect(r#"{ decision = "deny" }"#), &err),
            ["no decision: incomplete request: authority"]
        );
        assert!(check_expect(&expect(r#"{ error = "incomplete" }"#), &err).is_empty());
        assert_eq!(
            check_expect(&expect(r#"{ error = "http server" }"#), &err).len(),
            1
        );
        assert_eq!(
            check_expect(&expect(r#"{ error = "x" }"#), &Ok(decision())).len(),
            1
        );
        assert_eq!(
            check_expect(&expect(r#"{ error = "x", decision = "deny" }"#), &err),
            ["`error` cannot be combined with decision fields"]
        );
    }

    fn diag(code: Code, line: u32) -> Diagnostic {
        Diagnostic::new(
            code,
            Span {
                file: 0,
                start: 0,
                end: 1,
                line,
                column: 1,
            },
            "m",
        )
    }

    fn exp(code: &str, severity: &str, line: Option<u64>) -> ExpectedDiagnostic {
        ExpectedDiagnostic {
            code: code.into(),
            severity: severity.into(),
            line,
        }
    }

    #[test]
    fn diagnostics_all_met() {
        let actual = [
            diag(Code::PortConflict, 5),
            diag(Code::UnusedRoute, 2),
            diag(Code::UnusedRoute, 9),
        ];
        let check = check_diagnostics(
            &[
                exp("port-conflict", "error", Some(5)),
                exp("unused-route", "warning", None),
            ],
            &actual,
        );
        assert_eq!(check, DiagnosticCheck::default());
    }

    #[test]
    fn diagnostics_wrong_line_severity_or_code() {
        let actual = [diag(Code::PortConflict, 5)];
        let check = check_diagnostics(&[exp("port-conflict", "error", Some(4))], &actual);
        assert_eq!(check.missing, [0]);
        assert!(
            check.unexpected.is_empty(),
            "an error with an expected code is allowed"
        );
        let check = check_diagnostics(&[exp("port-conflict", "warning", None)], &actual);
        assert_eq!(check.missing, [0]);
        let check = check_diagnostics(&[exp("syntax", "error", None)], &actual);
        assert_eq!(
            check,
            DiagnosticCheck {
                missing: vec![0],
                unexpected: vec![0]
            }
        );
    }

    #[test]
    fn diagnostics_one_to_one_lines_first() {
        let actual = [diag(Code::DuplicateName, 3), diag(Code::DuplicateName, 7)];
        // The line-less expectation must not take the line-3 diagnostic first.
        let check = check_diagnostics(
            &[
                exp("duplicate-name", "error", None),
                exp("duplicate-name", "error", Some(3)),
            ],
            &actual,
        );
        assert_eq!(check, DiagnosticCheck::default());
        let check = check_diagnostics(
            &[
                exp("duplicate-name", "error", Some(3)),
                exp("duplicate-name", "error", Some(3)),
            ],
            &actual,
        );
        assert_eq!(check.missing, [1]);
        assert!(check.unexpected.is_empty());
    }

    #[test]
    fn extra_warnings_are_fine_extra_errors_are_not() {
        let actual = [
            diag(Code::EmptyRule, 1),
            diag(Code::ShadowedAllow, 2),
            diag(Code::InvalidHost, 3),
        ];
        let check = check_diagnostics(&[exp("empty-rule", "error", Some(1))], &actual);
        assert_eq!(
            check,
            DiagnosticCheck {
                missing: vec![],
                unexpected: vec![2]
            }
        );
    }

    fn run(text: &str) -> Outcome {
        run_toml("t.toml", text, Path::new("."))
    }

    #[test]
    fn broken_files() {
        let o = run("policy = ");
        assert_eq!((o.passed, o.failed), (0, 1));
        assert!(
            o.messages[0].starts_with("t.toml:1: not a valid conformance file"),
            "{o:?}"
        );
        let o = run("policy = ''");
        assert_eq!(
            o.messages,
            ["t.toml: no `[[case]]` or `[[diagnostic]]` tables"]
        );
        let o = run("policy = ''\ncase = 1");
        assert_eq!(
            o.messages,
            ["t.toml: `case` must be an array of tables (`[[case]]`)"]
        );
        let o = run("polcy = ''\n[[case]]\n[[case]]");
        assert_eq!((o.failed, o.messages.len()), (2, 1));
        assert_eq!(
            o.messages[0],
            "t.toml: unknown key `polcy` (2 expectations fail)"
        );
        let o = run("[[case]]");
        assert_eq!(o.messages, ["t.toml: no `policy` or `policy-file`"]);
        let o = run("policy = ''\npolicy-file = 'x'\n[[case]]");
        assert_eq!(o.failed, 1);
        let o = run("policy = ''\n[[case]]\n[[diagnostic]]");
        assert_eq!(o.failed, 2);
        let o = run("policy-file = 'does/not/exist.sluice'\n[[diagnostic]]\ncode = 'syntax'\nseverity = 'error'");
        assert_eq!(o.failed, 1);
        assert!(o.messages[0].contains("cannot read the policy"), "{o:?}");
    }

    #[test]
    fn coverage_marks_what_decisions_named() {
        let text = r#"policy = '''server web {
  port 80
  route a { path "/a" }
  route b { path "/b" }
}
allow r { to web  from any }
egress {
  allow r { host "x.example" }
  deny s { host "y.example" }
}
'''
[[case]]
name = "a"
request = { direction = "inbound", port = 80, method = "GET", path = "/a", peer = {} }
expect = { rule = "r" }
"#;
        let o = run(text);
        assert_eq!((o.passed, o.failed), (1, 0), "{o:?}");
        let c = &o.coverage[0];
        let marks = |items: &[CoveredItem]| {
            items
                .iter()
                .map(|i| (i.display_name(), i.taken))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            marks(&c.routes),
            [("web.a".to_string(), true), ("web.b".to_string(), false)]
        );
        assert_eq!(marks(&c.rules), [("r".to_string(), true)]);
        // The inbound rule `r` is not the egress rule `r`.
        assert_eq!(
            marks(&c.egress_rules),
            [("r".to_string(), false), ("s".to_string(), false)]
        );
        assert_eq!((c.routes[1].line, c.egress_rules[1].line), (4, 9));
        assert_eq!(
            c.to_text(),
            "coverage t.toml: 1 of 2 routes, 0 of 1 rule, 2 of 2 egress rules not taken:\n  \
             route web.b (line 4)\n  egress rule r (line 8)\n  egress rule s (line 9)"
        );
    }

    #[test]
    fn outcome_line() {
        let mut o = Outcome::default();
        o.pass();
        o.fail("x".into());
        o.fail("y".into());
        assert_eq!(o.to_string(), "1 passed, 2 failed");
    }

    #[test]
    fn finds_toml_files_recursively_in_order() {
        let dir = std::env::temp_dir().join(format!("sluice-cli-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b/c")).unwrap();
        for f in ["b/c/z.toml", "a.toml", "b/y.toml", "b/notes.md", "B.toml"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let mut out = Vec::new();
        find_files(&dir, true, &mut out).unwrap();
        let rel: Vec<_> = out
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(rel, ["B.toml", "a.toml", "b/c/z.toml", "b/y.toml"]);
        let mut out = Vec::new();
        find_files(&dir.join("b/notes.md"), true, &mut out).unwrap();
        assert_eq!(out.len(), 1, "an explicit file runs whatever its name");
        assert!(find_files(&dir.join("missing"), true, &mut Vec::new()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
