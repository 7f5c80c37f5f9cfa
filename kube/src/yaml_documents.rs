//! Multi-document Kubernetes YAML (and `kind: List`) in, the same out with
//! the pod template of every Pod, Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job and CronJob injected (or uninjected); other kinds pass
//! through unchanged.
//!
//! Only what injection changes is touched: the pod template is read into
//! the API types, injected, and the difference (a JSON Patch, as the
//! webhook sends) is applied to the document as it was read. Fields the API
//! types do not know and the order of keys are kept. Comments, anchors and
//! the original quoting are lost, since documents are written back from
//! their parsed values.

use crate::inject::{self, InjectConfig, InjectError, Injection, SkipReason, Uninjection};
use json_patch::jsonptr::PointerBuf;
use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use std::fmt;

/// What happened to one workload.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The proxy was added.
    Injected,
    /// Left as it was (already injected, disabled).
    Skipped(SkipReason),
    /// The proxy cannot be added; the document is left as it was.
    Refused(InjectError),
    /// The proxy was removed.
    Uninjected,
    /// Uninject found no `sluice.io/injected` marker.
    NotInjected,
}

/// One workload of the input and what happened to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Its `kind`, e.g. `Deployment`.
    pub kind: String,
    /// Its `metadata.name` (empty when it has none).
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for Report {
    /// As `kubectl` names objects: `deployment/web injected`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ", self.kind.to_lowercase(), self.name)?;
        match &self.outcome {
            Outcome::Injected => f.write_str("injected"),
            Outcome::Skipped(reason) => write!(f, "skipped: {reason}"),
            Outcome::Refused(e) => write!(f, "not injected: {e}"),
            Outcome::Uninjected => f.write_str("uninjected"),
            Outcome::NotInjected => f.write_str("skipped: not injected"),
        }
    }
}

/// The documents written back, and a report per workload found.
#[derive(Clone, Debug, PartialEq)]
pub struct Transformed {
    /// The YAML documents, separated by `---`.
    pub yaml: String,
    /// One entry per workload, in input order.
    pub reports: Vec<Report>,
}

impl Transformed {
    /// The workloads that could not be injected.
    pub fn refused(&self) -> impl Iterator<Item = &Report> {
        self.reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Refused(_)))
    }
}

/// Input that cannot be transformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YamlError {
    /// A document is not YAML.
    Parse {
        /// Its position, from 1.
        document: usize,
        /// The YAML parser's message.
        message: String,
    },
    /// A workload's pod template does not read as a Kubernetes pod.
    Template {
        /// The document's position, from 1.
        document: usize,
        /// The workload's kind.
        kind: String,
        /// The workload's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The output could not be written.
    Write {
        /// The YAML writer's message.
        message: String,
    },
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Parse { document, message } => {
                write!(f, "document {document} is not valid YAML: {message}")
            }
            YamlError::Template {
                document,
                kind,
                name,
                message,
            } => write!(
                f,
                "document {document}: the pod template of {}/{name} cannot be read: {message}",
                kind.to_lowercase()
            ),
            YamlError::Write { message } => write!(f, "cannot write the YAML: {message}"),
        }
    }
}

impl std::error::Error for YamlError {}

/// What to do with each pod template.
#[derive(Clone, Copy)]
enum Action<'a> {
    Inject(&'a InjectConfig),
    Uninject,
}

/// Injects the proxy into every workload of `text`. Every workload counts as
/// asking for it (the user did, by running `sluice inject`), except those
/// annotated `sluice.io/inject: disabled`. A workload that cannot be
/// injected is left as it is and reported as [`Outcome::Refused`].
pub fn inject_documents(text: &str, config: &InjectConfig) -> Result<Transformed, YamlError> {
    transform(text, Action::Inject(config))
}

/// Removes the proxy from every injected workload of `text`.
pub fn uninject_documents(text: &str) -> Result<Transformed, YamlError> {
    transform(text, Action::Uninject)
}

fn transform(text: &str, action: Action<'_>) -> Result<Transformed, YamlError> {
    let mut out = String::new();
    let mut reports = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let mut value = Value::deserialize(document).map_err(|e| YamlError::Parse {
            document: index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. after a leading or trailing `---`
        }
        transform_object(&mut value, index, action, &mut reports)?;
        let written = to_yaml(value, text).map_err(|message| YamlError::Write { message })?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&written);
    }
    Ok(Transformed { yaml: out, reports })
}

/// Whether a YAML 1.1 reader (kubectl's, `gopkg.in/yaml.v2`) could read
/// this plain scalar as something other than a string: `on`, `yes`, `n`
/// and the other booleans, or number and timestamp forms such as `1_000`,
/// `+12`, `190:20:30`, `2001-12-14`. The YAML writer quotes only what YAML
/// 1.2 would misread, so these are quoted here. A few harmless strings
/// (`1.2.3`) are quoted too.
fn yaml11_ambiguous(s: &str) -> bool {
    const BOOLS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "",
    ];
    if BOOLS.iter().any(|b| s.eq_ignore_ascii_case(b)) {
        return true;
    }
    let first = s.chars().next();
    first.is_some_and(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_digit() || "+-._:eEbBoOxXtTzZ ".contains(c))
}

/// Writes a document as YAML that YAML 1.1 readers read back the same: each
/// string [`yaml11_ambiguous`] calls ambiguous is written single-quoted. (The
/// writer cannot be told to quote, so such strings are swapped for
/// all-digit placeholders, which it always quotes, and put back.)
fn to_yaml(mut value: Value, input: &str) -> Result<String, String> {
    fn swap(v: &mut Value, nonce: &str, originals: &mut Vec<String>) {
        let placeholder = |s: &mut String, originals: &mut Vec<String>| {
            if yaml11_ambiguous(s) {
                let ph = format!("{nonce}{:08}", originals.len());
                originals.push(std::mem::replace(s, ph));
            }
        };
        match v {
            Value::String(s) => placeholder(s, originals),
            Value::Sequence(items) => items.iter_mut().for_each(|i| swap(i, nonce, originals)),
            Value::Mapping(m) => {
                let entries = std::mem::take(m);
                for (mut k, mut val) in entries {
                    swap(&mut k, nonce, originals);
                    swap(&mut val, nonce, originals);
                    m.insert(k, val);
                }
            }
            Value::Tagged(t) => swap(&mut t.value, nonce, originals),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    // A digit string that the input does not hold, so no placeholder can
    // be mistaken for the input's own text.
    let nonce = (0u32..)
        .map(|k| format!("9081726354{k}0"))
        .find(|n| !input.contains(n.as_str()))
        .unwrap_or_default();
    let mut originals = Vec::new();
    swap(&mut value, &nonce, &mut originals);
    let mut text = serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?;
    for (i, original) in originals.iter().enumerate() {
        let quoted = format!("'{nonce}{i:08}'");
        if !text.contains(&quoted) {
            return Err(format!("the string `{original}` was not written quoted"));
        }
        text = text.replacen(&quoted, &format!("'{}'", original.replace('\'', "''")), 1);
    }
    Ok(text)
}

/// Where a kind keeps its pod template: the keys from the object down.
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &[],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    })
}

fn str_at<'v>(value: &'v Value, keys: &[&str]) -> Option<&'v str> {
    keys.iter()
        .try_fold(value, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn transform_object(
    value: &mut Value,
    document: usize,
    action: Action<'_>,
    reports: &mut Vec<Report>,
) -> Result<(), YamlError> {
    let kind = str_at(value, &["kind"]).unwrap_or_default().to_owned();
    if kind == "List" {
        if let Some(Value::Sequence(items)) = value.get_mut("items") {
            for item in items {
                transform_object(item, document, action, reports)?;
            }
        }
        return Ok(());
    }
    let Some(path) = template_path(&kind) else {
        return Ok(());
    };
    let name = str_at(value, &["metadata", "name"])
        .unwrap_or_default()
        .to_owned();
    let template_error = |message: String| YamlError::Template {
        document,
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    let mut template = &mut *value;
    for key in path {
        template = template
            .get_mut(*key)
            .ok_or_else(|| template_error(format!("`{}` is missing", path.join("."))))?;
    }
    let Value::Mapping(template) = template else {
        return Err(template_error("it is not a mapping".to_owned()));
    };
    let (meta, spec) = read_template(template).map_err(template_error)?;
    let (outcome, changed) = match action {
        Action::Inject(config) => match inject::inject_pod(&meta, &spec, true, config) {
            Ok(Injection::Injected { meta, spec }) => (Outcome::Injected, Some((meta, spec))),
            Ok(Injection::Skipped(reason)) => (Outcome::Skipped(reason), None),
            Err(e) => (Outcome::Refused(e), None),
        },
        Action::Uninject => match inject::uninject_pod(&meta, &spec) {
            Uninjection::Uninjected { meta, spec } => (Outcome::Uninjected, Some((meta, spec))),
            Uninjection::NotInjected => (Outcome::NotInjected, None),
        },
    };
    if let Some((new_meta, new_spec)) = changed {
        let patch = pod_patch(&meta, &spec, &new_meta, &new_spec).map_err(template_error)?;
        if !template.contains_key("metadata") {
            // First, where a template's metadata is written.
            let rest = std::mem::take(template);
            template.insert("metadata".into(), Value::Mapping(Mapping::new()));
            template.extend(rest);
        }
        let mut root = Value::Mapping(std::mem::take(template));
        let applied = patch.iter().try_for_each(|op| apply(&mut root, op));
        if let Value::Mapping(m) = root {
            *template = m;
        }
        applied.map_err(template_error)?;
        if matches!(action, Action::Uninject)
            && matches!(template.get("metadata"), Some(Value::Mapping(m)) if m.is_empty())
        {
            // Inject wrote it for its annotations; the template had none.
            template.shift_remove("metadata");
        }
    }
    reports.push(Report {
        kind,
        name,
        outcome,
    });
    Ok(())
}

/// Reads a pod template's `metadata` and `spec` into the API types.
fn read_template(template: &Mapping) -> Result<(ObjectMeta, PodSpec), String> {
    let meta = match template.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => from_yaml(m).map_err(|e| format!("`metadata`: {e}"))?,
    };
    let spec = template.get("spec").ok_or("`spec` is missing")?;
    let mut spec = to_json(spec)?;
    quantities_as_strings(&mut spec);
    let spec = serde_json::from_value(spec).map_err(|e| format!("`spec`: {e}"))?;
    Ok((meta, spec))
}

fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn from_yaml<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_json::from_value(to_json(value)?).map_err(|e| e.to_string())
}

/// Kubernetes accepts `cpu: 1` as well as `cpu: "1"`; the API types only
/// the string. Numbers in containers' `resources` become strings.
fn quantities_as_strings(spec: &mut serde_json::Value) {
    for list in ["containers", "initContainers"] {
        let Some(serde_json::Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers {
            for part in ["limits", "requests"] {
                if let Some(serde_json::Value::Object(m)) =
                    c.pointer_mut(&format!("/resources/{part}"))
                {
                    for q in m.values_mut() {
                        if let serde_json::Value::Number(n) = q {
                            *q = serde_json::Value::String(n.to_string());
                        }
                    }
                }
            }
        }
    }
}

/// The JSON Patch from one pod template (`{metadata, spec}`) to another.
///
/// Like `json_patch::diff`, except for lists: an item inserted into (or
/// removed from) a list is one `add` (or `remove`) at its index, so the
/// items around it are not rewritten. Lists of the same length are
/// compared item by item; anything else is replaced whole.
pub fn pod_patch(
    meta: &ObjectMeta,
    spec: &PodSpec,
    new_meta: &ObjectMeta,
    new_spec: &PodSpec,
) -> Result<json_patch::Patch, String> {
    let json = |m: &ObjectMeta, s: &PodSpec| -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({
            "metadata": serde_json::to_value(m).map_err(|e| e.to_string())?,
            "spec": serde_json::to_value(s).map_err(|e| e.to_string())?,
        }))
    };
    let mut ops = Vec::new();
    diff(
        &json(meta, spec)?,
        &json(new_meta, new_spec)?,
        &mut PointerBuf::root(),
        &mut ops,
    );
    Ok(json_patch::Patch(ops))
}

/// Whether `short` is `long` with some items left out; the matched indexes
/// of `long`, in order.
fn subsequence(short: &[serde_json::Value], long: &[serde_json::Value]) -> Option<Vec<bool>> {
    let mut matched = vec![false; long.len()];
    let mut next = short.iter().peekable();
    for (i, item) in long.iter().enumerate() {
        if next.peek() == Some(&item) {
            matched[i] = true;
            next.next();
        }
    }
    next.peek().is_none().then_some(matched)
}

fn diff(
    left: &serde_json::Value,
    right: &serde_json::Value,
    path: &mut PointerBuf,
    ops: &mut Vec<PatchOperation>,
) {
    use json_patch::{AddOperation, RemoveOperation, ReplaceOperation};
    use serde_json::Value as J;
    if left == right {
        return;
    }
    let add = |path: &PointerBuf, value: &J| {
        PatchOperation::Add(AddOperation {
            path: path.clone(),
            value: value.clone(),
        })
    };
    let remove = |path: &PointerBuf| PatchOperation::Remove(RemoveOperation { path: path.clone() });
    match (left, right) {
        (J::Object(a), J::Object(b)) => {
            for (k, va) in a {
                path.push_back(k);
                match b.get(k) {
                    Some(vb) => diff(va, vb, path, ops),
                    None => ops.push(remove(path)),
                }
                path.pop_back();
            }
            for (k, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                path.push_back(k);
                ops.push(add(path, vb));
                path.pop_back();
            }
        }
        (J::Array(a), J::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                path.push_back(i);
                diff(va, vb, path, ops);
                path.pop_back();
            }
        }
        (J::Array(a), J::Array(b)) if a.len() < b.len() && subsequence(a, b).is_some() => {
            let kept = subsequence(a, b).unwrap_or_default();
            for (i, vb) in b.iter().enumerate().filter(|(i, _)| !kept[*i]) {
                path.push_back(i);
                ops.push(add(path, vb));
                path.pop_back();
            }
        }
        (J::Array(a), J::Array(b)) if b.len() < a.len() && subsequence(b, a).is_some() => {
            let kept = subsequence(b, a).unwrap_or_default();
            for i in (0..a.len()).rev().filter(|i| !kept[*i]) {
                path.push_back(i);
                ops.push(remove(path));
                path.pop_back();
            }
        }
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.clone(),
            value: right.clone(),
        })),
    }
}

/// Applies one `add`, `remove` or `replace` (what `json_patch::diff` makes)
/// to a YAML value, keeping the order of the keys it does not touch.
fn apply(root: &mut Value, op: &PatchOperation) -> Result<(), String> {
    let (path, value) = match op {
        PatchOperation::Add(o) => (&o.path, Some(&o.value)),
        PatchOperation::Replace(o) => (&o.path, Some(&o.value)),
        PatchOperation::Remove(o) => (&o.path, None),
        other => return Err(format!("unexpected patch operation `{other}`")),
    };
    let value = value
        .map(|v| serde_yaml_ng::to_value(v).map_err(|e| e.to_string()))
        .transpose()?;
    let tokens: Vec<String> = path.tokens().map(|t| t.decoded().into_owned()).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return match value {
            Some(v) => {
                *root = v;
                Ok(())
            }
            None => Err("cannot remove the whole template".to_owned()),
        };
    };
    let missing = || format!("`{path}` is not in the document");
    let mut at = root;
    for t in parents {
        at = match at {
            Value::Mapping(m) => m.get_mut(t.as_str()),
            Value::Sequence(s) => t.parse::<usize>().ok().and_then(|i| s.get_mut(i)),
            _ => None,
        }
        .ok_or_else(missing)?;
    }
    let is_add = matches!(op, PatchOperation::Add(_));
    match (at, value) {
        (Value::Mapping(m), Some(v)) => {
            if !is_add && !m.contains_key(last.as_str()) {
                return Err(missing());
            }
            m.insert(Value::String(last.clone()), v);
        }
        (Value::Mapping(m), None) => {
            m.shift_remove(last.as_str()).ok_or_else(missing)?;
        }
        (Value::Sequence(s), v) => {
            let index = if is_add && last == "-" {
                s.len()
            } else {
                last.parse::<usize>().map_err(|_| missing())?
            };
            match v {
                Some(v) if is_add && index <= s.len() => s.insert(index, v),
                Some(v) if index < s.len() => s[index] = v,
                None if index < s.len() => {
                    s.remove(index);
                }
                _ => return Err(missing()),
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations as ann;

    const POD_SPEC: &str = "
      containers:
      - name: app
        image: example/app:1
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 1, memory: 64Mi}
        futureField: kept";

    /// A workload of `kind` whose pod template has [`POD_SPEC`].
    fn workload(kind: &str, api: &str) -> String {
        let indent = |text: &str, by: usize| {
            let pad = " ".repeat(by);
            text.lines()
                .map(|l| format!("{pad}{l}\n"))
                .collect::<String>()
        };
        let template = format!("metadata:\n  labels: {{app: web}}\nspec:{POD_SPEC}\n")
            .replace("\n      ", "\n  ");
        let body = match kind {
            "Pod" => template,
            "CronJob" => format!(
                "spec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n{}",
                indent(&template, 8)
            ),
            _ => format!(
                "spec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n{}",
                indent(&template, 4)
            ),
        };
        let body = body
            .strip_prefix("metadata:\n")
            .map_or(body.clone(), |rest| rest.to_owned());
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: web\n  namespace: shop\n{body}"
        )
    }

    const KINDS: [(&str, &str); 7] = [
        ("Pod", "v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
    ];

    fn normalized(text: &str) -> String {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| serde_yaml_ng::to_string(&Value::deserialize(d).unwrap()).unwrap())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn template_of<'v>(doc: &'v Value, kind: &str) -> &'v Value {
        template_path(kind).unwrap().iter().fold(doc, |v, k| &v[*k])
    }

    #[test]
    fn every_workload_kind_round_trips() {
        let config = InjectConfig::default();
        for (kind, api) in KINDS {
            let text = workload(kind, api);
            let out = inject_documents(&text, &config).unwrap();
            assert_eq!(
                out.reports,
                [Report {
                    kind: kind.into(),
                    name: "web".into(),
                    outcome: Outcome::Injected
                }],
                "{text}"
            );
            let doc: Value = serde_yaml_ng::from_str(&out.yaml).unwrap();
            let t = template_of(&doc, kind);
            assert_eq!(
                t["metadata"]["annotations"][ann::INJECTED].as_str(),
                Some(inject::VERSION),
                "{kind}"
            );
            assert_eq!(
                t["spec"]["initContainers"][1]["name"].as_str(),
                Some("sluice-proxy")
            );
            // What the API types do not know, and the number as written, are kept.
            assert_eq!(
                t["spec"]["containers"][0]["futureField"].as_str(),
                Some("kept")
            );
            assert_eq!(
                t["spec"]["containers"][0]["resources"]["requests"]["cpu"].as_u64(),
                Some(1)
            );
            // Twice is once.
            let again = inject_documents(&out.yaml, &config).unwrap();
            assert_eq!(again.yaml, out.yaml);
            assert_eq!(
                again.reports[0].outcome,
                Outcome::Skipped(SkipReason::AlreadyInjected)
            );
            // uninject(inject(x)) == x, key order included.
            let back = uninject_documents(&out.yaml).unwrap();
            assert_eq!(back.yaml, normalized(&text), "{kind}");
            assert_eq!(back.reports[0].outcome, Outcome::Uninjected);
            assert_eq!(
                uninject_documents(&text).unwrap().reports[0].outcome,
                Outcome::NotInjected
            );
        }
    }

    #[test]
    fn classic_round_trips_too() {
        let config = InjectConfig {
            sidecar: ann::Sidecar::Classic,
            ..InjectConfig::default()
        };
        let text = workload("Deployment", "apps/v1");
        let out = inject_documents(&text, &config).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&out.yaml).unwrap();
        let t = template_of(&doc, "Deployment");
        assert_eq!(
            t["spec"]["containers"][0]["name"].as_str(),
            Some("sluice-proxy")
        );
        assert_eq!(t["spec"]["containers"][1]["name"].as_str(), Some("app"));
        assert_eq!(
            t["spec"]["initContainers"][0]["name"].as_str(),
            Some("sluice-init")
        );
        // The app container moved down one place is not rewritten: its
        // unknown field and the number as written are kept.
        assert_eq!(
            t["spec"]["containers"][1]["futureField"].as_str(),
            Some("kept")
        );
        assert_eq!(
            t["spec"]["containers"][1]["resources"]["requests"]["cpu"].as_u64(),
            Some(1)
        );
        let back = uninject_documents(&out.yaml).unwrap();
        assert_eq!(back.yaml, normalized(&text));
    }

    #[test]
    fn lists_change_by_insertions_and_removals() {
        let j = |v: serde_json::Value| v;
        let meta = ObjectMeta::default();
        let spec: PodSpec = serde_json::from_value(j(serde_json::json!({
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "x"}]
        })))
        .unwrap();
        let config = InjectConfig {
            sidecar: ann::Sidecar::Classic,
            ..InjectConfig::default()
        };
        let Ok(Injection::Injected { meta: m2, spec: s2 }) =
            inject::inject_pod(&meta, &spec, true, &config)
        else {
            panic!()
        };
        let patch = pod_patch(&meta, &spec, &m2, &s2).unwrap();
        let paths: Vec<String> = patch
            .iter()
            .map(|op| format!("{} {}", op_name(op), op.path()))
            .collect();
        assert_eq!(
            paths,
            [
                "add /metadata/annotations",
                "add /spec/containers/0",
                "add /spec/initContainers/1",
                "add /spec/volumes",
            ]
        );
        let patch = pod_patch(&m2, &s2, &meta, &spec).unwrap();
        let paths: Vec<String> = patch
            .iter()
            .map(|op| format!("{} {}", op_name(op), op.path()))
            .collect();
        assert_eq!(
            paths,
            [
                "remove /metadata/annotations",
                "remove /spec/containers/0",
                "remove /spec/initContainers/1",
                "remove /spec/volumes",
            ]
        );
    }

    fn op_name(op: &PatchOperation) -> &'static str {
        match op {
            PatchOperation::Add(_) => "add",
            PatchOperation::Remove(_) => "remove",
            PatchOperation::Replace(_) => "replace",
            _ => "other",
        }
    }

    #[test]
    fn documents_lists_and_other_kinds() {
        let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}\n- {}",
            workload("Pod", "v1").trim_end().replace('\n', "\n  "),
            service.trim_end().replace('\n', "\n  ")
        );
        let text = format!(
            "---\n{service}---\n{}---\n{list}\n---\n",
            workload("Deployment", "apps/v1")
        );
        let out = inject_documents(&text, &InjectConfig::default()).unwrap();
        let kinds: Vec<_> = out
            .reports
            .iter()
            .map(|r| (r.kind.as_str(), &r.outcome))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Deployment", &Outcome::Injected),
                ("Pod", &Outcome::Injected)
            ]
        );
        let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&out.yaml)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3, "empty documents are dropped");
        assert_eq!(
            serde_yaml_ng::to_string(&docs[0]).unwrap(),
            normalized(service)
        );
        assert_eq!(
            docs[2]["items"][1],
            serde_yaml_ng::from_str::<Value>(service).unwrap()
        );
        assert_eq!(
            docs[2]["items"][0]["spec"]["initContainers"][0]["name"].as_str(),
            Some("sluice-init")
        );
        assert_eq!(out.reports[0].to_string(), "deployment/web injected");
    }

    #[test]
    fn refusals_and_disabled_are_reported() {
        let host = workload("DaemonSet", "apps/v1").replace(
            "      containers:",
            "      hostNetwork: true\n      containers:",
        );
        let off = workload("Deployment", "apps/v1").replace(
            "    metadata:\n      labels",
            "    metadata:\n      annotations: {sluice.io/inject: disabled}\n      labels",
        );
        let text = format!("{host}---\n{off}");
        let out = inject_documents(&text, &InjectConfig::default()).unwrap();
        assert_eq!(out.yaml, normalized(&text), "nothing is changed");
        assert_eq!(out.refused().count(), 1);
        assert_eq!(
            out.reports[0].to_string(),
            "daemonset/web not injected: the pod template uses `hostNetwork: true`: the proxy cannot be \
             injected, since `sluice init` would redirect the node's own traffic; annotate it \
             `sluice.io/inject: disabled` to leave it out"
        );
        assert_eq!(
            out.reports[1].outcome,
            Outcome::Skipped(SkipReason::Disabled)
        );
    }

    #[test]
    fn strings_yaml_1_1_reads_otherwise_are_quoted() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {'y': 'on', 'version': '1.2.3', \"it's\": 'Off'}\n\
            data: {a: 'yes', b: 'NO', c: 'n', d: '1_000', e: '2001-12-14', f: '+12', g: '190:20:30', h: 'plain', i: 'x: y', j: \"it's\"}\n\
            items: [on, 1, true, null, 'null']\n";
        let out = inject_documents(text, &InjectConfig::default()).unwrap();
        for quoted in [
            "'y': 'on'",
            "version: '1.2.3'",
            "it's: 'Off'",
            "a: 'yes'",
            "b: 'NO'",
            "c: 'n'",
            "d: '1_000'",
            "e: '2001-12-14'",
            "f: '+12'",
            "g: '190:20:30'",
            "h: plain",
            "- 'null'",
        ] {
            assert!(out.yaml.contains(quoted), "{quoted}:\n{}", out.yaml);
        }
        // Read back (YAML 1.2), it is the same document.
        let back: Value = serde_yaml_ng::from_str(&out.yaml).unwrap();
        assert_eq!(back, serde_yaml_ng::from_str::<Value>(text).unwrap());
        assert!(!yaml11_ambiguous("nginx") && !yaml11_ambiguous("10m") && !yaml11_ambiguous("v1"));
    }

    #[test]
    fn bad_input_is_an_error() {
        let e = inject_documents("kind: Service\n---\nkind: [\n", &InjectConfig::default())
            .unwrap_err();
        assert!(matches!(e, YamlError::Parse { document: 2, .. }), "{e}");
        let e = inject_documents(
            "kind: Deployment\nmetadata: {name: x}\nspec: {}\n",
            &InjectConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "document 1: the pod template of deployment/x cannot be read: `spec.template` is missing"
        );
        let e = inject_documents(
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n",
            &InjectConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(e, YamlError::Template { .. }), "{e}");
    }
}
