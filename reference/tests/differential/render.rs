//! Rendering the model as policy text, as one file or as a folder of files.

use crate::model::{
    BreakerSpec, Egress, Model, Net, PathCond, Principal, Proto, RetrySpec, Route, Rule, Server,
    Service, Vm,
};
use crate::rng::{Draw, Gen};

pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn raw(s: &str) -> String {
    assert!(!s.contains('"'), "raw strings cannot hold quotes: {s}");
    format!("r\"{s}\"")
}

pub(crate) fn ports_text(ports: &[(u16, u16)]) -> String {
    ports
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn nets_text(include: &[Net], except: &[Net]) -> String {
    let list = |l: &[Net]| {
        l.iter()
            .map(|n| n.text.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if except.is_empty() {
        list(include)
    } else {
        format!("{} except {}", list(include), list(except))
    }
}

/// A block `head { stmts }` with random (but harmless) separators.
pub(crate) fn block(g: &mut Gen, head: &str, stmts: &[String]) -> String {
    let sep = match g.below(5) {
        0 => " ",
        1 => "; ",
        2 => "\n  ",
        3 => "\n  # a comment\n  ",
        _ => "\n    ",
    };
    format!("{head} {{{sep}{}{sep}}}", stmts.join(sep))
}

/// `fixed` keeps its order; each of `free` goes to a random place.
pub(crate) fn interleave(g: &mut Gen, fixed: Vec<String>, free: Vec<String>) -> Vec<String> {
    let mut out = fixed;
    for f in free {
        let at = g.below(out.len() + 1);
        out.insert(at, f);
    }
    out
}

pub(crate) fn vm_text(v: &Vm) -> String {
    match v {
        Vm::Eq(s) => format!("= {}", quoted(s)),
        Vm::Re(r) => format!("~ {}", raw(r)),
        Vm::Present => "present".to_string(),
    }
}

pub(crate) fn render_route(g: &mut Gen, r: &Route) -> String {
    let mut stmts = Vec::new();
    if !r.methods.is_empty() {
        let sep = if g.chance(30) { "," } else { ", " };
        stmts.push(format!("method {}", r.methods.join(sep)));
    }
    match &r.path {
        None => {}
        Some(PathCond::Exact(p)) => stmts.push(format!("path {}", quoted(p))),
        Some(PathCond::Prefix(p)) => stmts.push(format!("path prefix {}", quoted(p))),
        Some(PathCond::Regex(re)) => stmts.push(format!("path regex {}", raw(re))),
        Some(PathCond::Grpc(s)) => stmts.push(format!("grpc {}", quoted(s))),
    }
    for (name, v) in &r.headers {
        stmts.push(format!("header {} {}", quoted(name), vm_text(v)));
    }
    for (key, v) in &r.queries {
        stmts.push(format!("query {} {}", quoted(key), vm_text(v)));
    }
    if !r.to.is_empty() {
        let list: Vec<String> =
            r.to.iter()
                .map(|(b, w)| match w {
                    Some(w) => format!("{b} {w}"),
                    None => b.clone(),
                })
                .collect();
        stmts.push(format!("to {}", list.join(", ")));
    }
    if let Some((t, _)) = r.timeout {
        stmts.push(format!("timeout {t}"));
    }
    if let Some(retry) = &r.retry {
        stmts.push(retry_text(g, retry));
    }
    g.shuffle(&mut stmts);
    block(g, &format!("route {}", r.name), &stmts)
}

pub(crate) fn retry_text(g: &mut Gen, r: &RetrySpec) -> String {
    let mut stmts = Vec::new();
    if let Some(n) = r.attempts {
        stmts.push(format!("attempts {n}"));
    }
    if let Some(on) = &r.on {
        stmts.push(format!("on {}", on.join(", ")));
    }
    if let Some(t) = r.per_try_timeout {
        stmts.push(format!("per-try-timeout {t}"));
    }
    if let Some(b) = r.budget {
        stmts.push(format!("budget {b}%"));
    }
    g.shuffle(&mut stmts);
    block(g, "retry", &stmts)
}

pub(crate) fn breaker_text(g: &mut Gen, b: &BreakerSpec) -> String {
    let mut stmts = Vec::new();
    if let Some(n) = b.consecutive_failures {
        stmts.push(format!("consecutive-failures {n}"));
    }
    if let Some((lo, hi)) = b.backoff {
        stmts.push(format!("backoff {lo} {hi}"));
    }
    if let Some(j) = b.jitter {
        stmts.push(format!("jitter {j}%"));
    }
    g.shuffle(&mut stmts);
    block(g, "circuit-breaker", &stmts)
}

pub(crate) fn render_server(g: &mut Gen, s: &Server) -> String {
    let mut free = Vec::new();
    if !s.ports.is_empty() {
        free.push(format!("port {}", ports_text(&s.ports)));
    }
    if let Some(p) = s.protocol {
        free.push(format!(
            "protocol {}",
            match p {
                Proto::Http => "http",
                Proto::Grpc => "grpc",
                Proto::Tcp => "tcp",
            }
        ));
    }
    if let Some(d) = s.default {
        free.push(format!("default {}", d.text()));
    }
    let routes: Vec<String> = s.routes.iter().map(|r| render_route(g, r)).collect();
    let stmts = interleave(g, routes, free);
    block(g, &format!("server {}", s.name), &stmts)
}

pub(crate) fn principal_text(p: &Principal) -> String {
    let list = |l: &[String]| l.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ");
    match p {
        Principal::Any => "from any".to_string(),
        Principal::Authenticated => "from authenticated".to_string(),
        Principal::Identity(ps) => format!("from identity {}", list(ps)),
        Principal::Namespace(ns) => format!("from namespace {}", list(ns)),
        Principal::Network(inc, exc) => format!("from network {}", nets_text(inc, exc)),
    }
}

pub(crate) fn render_rule(g: &mut Gen, r: &Rule) -> String {
    let target = |(s, route): &(String, Option<String>)| match route {
        Some(route) => format!("{s}.{route}"),
        None => s.clone(),
    };
    let targets: Vec<String> = r.targets.iter().map(target).collect();
    let mut tos = Vec::new();
    if targets.len() > 1 && g.chance(30) {
        // `to` lists add up.
        for t in &targets {
            tos.push(format!("to {t}"));
        }
    } else {
        tos.push(format!("to {}", targets.join(", ")));
    }
    let froms: Vec<String> = r.froms.iter().map(principal_text).collect();
    let stmts = interleave(g, froms, tos);
    block(
        g,
        &format!("{} {}", if r.deny { "deny" } else { "allow" }, r.name),
        &stmts,
    )
}

pub(crate) fn render_egress(g: &mut Gen, e: &Egress) -> String {
    let mut rules = Vec::new();
    for r in &e.rules {
        let mut stmts = Vec::new();
        if !r.hosts.is_empty() {
            stmts.push(format!(
                "host {}",
                r.hosts
                    .iter()
                    .map(|h| quoted(h))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some((inc, exc)) = &r.nets {
            stmts.push(format!("network {}", nets_text(inc, exc)));
        }
        if !r.ports.is_empty() {
            stmts.push(format!("port {}", ports_text(&r.ports)));
        }
        g.shuffle(&mut stmts);
        rules.push(block(
            g,
            &format!("{} {}", if r.deny { "deny" } else { "allow" }, r.name),
            &stmts,
        ));
    }
    let free = match e.default {
        Some(true) => vec!["default allow".to_string()],
        Some(false) => vec!["default deny".to_string()],
        None => vec![],
    };
    let stmts = interleave(g, rules, free);
    block(g, "egress", &stmts)
}

pub(crate) fn render_service(g: &mut Gen, s: &Service) -> String {
    let mut free = vec![format!(
        "authority {}",
        s.authorities
            .iter()
            .map(|a| quoted(a))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    if let Some((t, _)) = s.timeout {
        free.push(format!("timeout {t}"));
    }
    if let Some(retry) = &s.retry {
        free.push(retry_text(g, retry));
    }
    if let Some(breaker) = &s.breaker {
        free.push(breaker_text(g, breaker));
    }
    for b in &s.backends {
        let mut stmts = Vec::new();
        if !b.endpoints.is_empty() {
            let sep = if g.chance(30) { "," } else { ", " };
            stmts.push(format!("endpoint {}", b.endpoints.join(sep)));
        }
        if let Some(f) = &b.failover {
            stmts.push(format!("failover {f}"));
        }
        if let Some(id) = b.identity {
            stmts.push(format!("identity {}", quoted(id)));
        }
        if let Some(c) = b.cluster {
            stmts.push(format!("cluster {}", quoted(c)));
        }
        if let Some(n) = b.max_in_flight {
            stmts.push(format!("max-in-flight {n}"));
        }
        g.shuffle(&mut stmts);
        free.push(block(g, &format!("backend {}", b.name), &stmts));
    }
    let routes: Vec<String> = s.routes.iter().map(|r| render_route(g, r)).collect();
    let stmts = interleave(g, routes, free);
    block(g, &format!("service {}", s.name), &stmts)
}

/// The policy text. Items come in a random order, except that rules keep
/// their declaration order (it decides which rule is named).
pub(crate) fn render(m: &Model) -> String {
    render_items(m).into_iter().map(|t| t + "\n").collect()
}

/// The texts of the items in declaration order.
pub(crate) fn render_items(m: &Model) -> Vec<String> {
    let mut g = Gen::new(m.style);
    let mut items: Vec<(u64, Option<String>)> = Vec::new();
    if let Some(mesh) = &m.mesh {
        let mut stmts = Vec::new();
        if let Some(td) = &mesh.trust_domain {
            stmts.push(format!("trust-domain {}", quoted(td)));
        }
        if let Some(d) = mesh.default {
            stmts.push(format!("default {}", d.text()));
        }
        g.shuffle(&mut stmts);
        items.push((g.next_u64(), Some(block(&mut g, "mesh", &stmts))));
    }
    for s in &m.servers {
        items.push((g.next_u64(), Some(render_server(&mut g, s))));
    }
    let mut rules = Vec::new();
    for r in &m.rules {
        items.push((g.next_u64(), None));
        rules.push(render_rule(&mut g, r));
    }
    if let Some(e) = &m.egress {
        items.push((g.next_u64(), Some(render_egress(&mut g, e))));
    }
    for s in &m.services {
        items.push((g.next_u64(), Some(render_service(&mut g, s))));
    }
    items.sort_by_key(|i| i.0);
    let mut rules = rules.into_iter();
    let mut out: Vec<String> = items
        .into_iter()
        .map(|(_, text)| text.or_else(|| rules.next()).unwrap_or_default())
        .collect();
    for e in &m.extra {
        let at = g.below(out.len() + 1);
        out.insert(at, e.clone());
    }
    out
}

/// Relative paths of policy files in a folder: their byte order (`-` <
/// `.` < `/` < digits < upper case < `_` < lower case < UTF-8) is the
/// declaration order, which sorting path components instead would break.
pub(crate) const FILE_PATHS: &[&str] = &[
    "a.sluice",
    "a-b.sluice",
    "a.b.sluice",
    "a/b.sluice",
    "a/a/z.sluice",
    "B.sluice",
    "_.sluice",
    "z.sluice",
    "10.sluice",
    "9.sluice",
    "\u{e9}.sluice",
    "b/c/d.sluice",
];
/// A file of a policy folder: its relative path and its text.
pub(crate) type FileText = (String, String);

/// Files of a policy folder that are not policy files (never read).
pub(crate) const JUNK_FILES: &[(&str, &str)] = &[
    ("README.md", "not { a policy"),
    ("a/x.sluice.bak", "server {"),
    ("b/notes.txt", "}"),
    ("c/sluice", "{"),
];

/// The policy as a folder (spec section 1): its items, in declaration
/// order, cut into runs, one run per file, the files taken in byte order
/// of their paths; some files empty or only a comment; and some files that
/// are not policy files. `(path, text)` pairs, policy files first, sorted.
pub(crate) fn render_files(m: &Model, seed: u64) -> (Vec<FileText>, Vec<FileText>) {
    let items = render_items(m);
    let mut g = Gen::new(seed);
    let k = g.range(2, 5);
    let mut paths = g.distinct(FILE_PATHS, k);
    paths.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut cuts: Vec<usize> = (0..k - 1).map(|_| g.range(0, items.len())).collect();
    cuts.sort_unstable();
    cuts.insert(0, 0);
    cuts.push(items.len());
    let files = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let mut text = if g.chance(20) {
                format!("# {path}\n")
            } else {
                String::new()
            };
            for item in &items[cuts[i]..cuts[i + 1]] {
                text.push_str(item);
                text.push('\n');
            }
            (path, text)
        })
        .collect();
    let n_junk = g.weighted(&[60, 30, 10]);
    let junk = g
        .distinct(&JUNK_FILES.iter().map(|j| j.0).collect::<Vec<_>>(), n_junk)
        .into_iter()
        .map(|p| {
            let text = JUNK_FILES
                .iter()
                .find(|j| j.0 == p)
                .map_or("", |j| j.1)
                .to_string();
            (p, text)
        })
        .collect();
    (files, junk)
}

/// Distinguishes the temporary folders of concurrent cases.
pub(crate) static FOLDER_COUNTER: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Writes the files of [`render_files`] to a fresh temporary folder (in a
/// random order) and reads it back as the compiler's input does
/// (`sluice_lang::source::load`); checks that exactly the policy files
/// came back, in byte order of their paths.
pub(crate) fn load_folder(
    m: &Model,
    seed: u64,
) -> Result<Vec<sluice_lang::ast::SourceFile>, String> {
    let (files, junk) = render_files(m, seed);
    let n = FOLDER_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-differential-{}-{n}", std::process::id()));
    let mut all: Vec<&FileText> = files.iter().chain(&junk).collect();
    Gen::new(seed ^ 0x5eed).shuffle(&mut all);
    let written = all.iter().try_for_each(|(path, text)| {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap_or(&dir))?;
        std::fs::write(full, text)
    });
    let loaded = written.and_then(|()| sluice_lang::source::load(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = loaded.map_err(|e| format!("the policy folder does not load: {e}"))?;
    let got: Vec<&str> = loaded.iter().map(|f| f.path.as_str()).collect();
    let want: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    if got != want {
        return Err(format!(
            "the policy folder loads the files {got:?}, not {want:?} (byte order of their paths)"
        ));
    }
    Ok(loaded)
}
