//! Rendering diagnostics: rustc-style text (by `annotate-snippets`, the
//! renderer rustc itself uses), or JSON.

use crate::ast::{SourceFile, Span};
use crate::diagnostic::{Diagnostic, Severity};
use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;
use std::fmt::Write as _;
use std::ops::Range;

/// Columns a tab takes when a source line is shown (`annotate-snippets`
/// expands tabs to this many spaces).
const TAB_WIDTH: usize = 4;

/// Renders diagnostics like rustc, in the given order, without colour:
///
/// ```text
/// error[duplicate-name]: server `a` is already declared (line 1)
///  --> policy.sluice:2:8
///   |
/// 1 | server a { port 1 }
///   |        - first defined here
/// 2 | server a { port 2 }
///   |        ^
///
/// error: 1 error
/// ```
///
/// Each diagnostic is its header, its location, the source line with carets
/// under the span (at least one; a span that goes on past its first line is
/// marked to the end of that line, less trailing whitespace), its labels
/// (dashes under their spans, with the label's message; a label in another
/// file is shown under `::: FILE:LINE:COLUMN`), then a blank line. Lines
/// are shown whole; tabs become 4 spaces and control characters their
/// Unicode control pictures. A diagnostic whose file or line is unknown
/// (e.g. an `io` error) shows only its header and, when the file is known,
/// its path (and line and column, when known); a label whose place is
/// unknown is left out.
///
/// The text ends with a summary line: `error: 2 errors, 1 warning` when
/// there are errors, `warning: 1 warning` when there are only warnings.
/// No diagnostics render as the empty string.
pub fn human(files: &[SourceFile], diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    // Line starts of each file, computed when first needed.
    let mut lines: Vec<Option<Vec<usize>>> = vec![None; files.len()];
    for d in diagnostics {
        render_one(&mut out, files, &mut lines, d);
        out.push_str("\n\n");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if errors > 0 {
        let _ = write!(out, "error: {}", plural(errors, "error"));
        if warnings > 0 {
            let _ = write!(out, ", {}", plural(warnings, "warning"));
        }
        out.push('\n');
    } else if warnings > 0 {
        let _ = writeln!(out, "warning: {}", plural(warnings, "warning"));
    }
    out
}

/// `1 error`, `2 errors`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A span placed on its source line: what `annotate-snippets` is given.
struct Mark<'d> {
    /// Index of the file in the policy's files.
    file: usize,
    /// 1-based line.
    line: u32,
    /// Byte offset of the line's start in the file.
    line_start: usize,
    /// Byte offset of the line's end (before its line break).
    line_end: usize,
    /// The bytes marked, within the line.
    range: Range<usize>,
    /// The label's message (`None` for the primary span).
    label: Option<&'d str>,
}

/// One diagnostic, without a final newline.
fn render_one(
    out: &mut String,
    files: &[SourceFile],
    lines: &mut [Option<Vec<usize>>],
    d: &Diagnostic,
) {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let title = level.primary_title(d.message.as_str()).id(d.code.as_str());
    let Some(primary) = mark(files, lines, d.span, None) else {
        // The file or the line is unknown: show what is known.
        let report = match files.get(d.span.file as usize) {
            None => Group::with_title(title),
            Some(file) if d.span.line == 0 => title.element(Origin::path(file.path.as_str())),
            Some(file) => title.element(
                Origin::path(file.path.as_str())
                    .line(d.span.line as usize)
                    .char_column(d.span.column as usize),
            ),
        };
        out.push_str(&Renderer::plain().render(&[report]));
        return;
    };
    let mut marks = vec![primary];
    marks.extend(
        d.labels
            .iter()
            .filter_map(|l| mark(files, lines, l.span, Some(&l.message))),
    );
    // One snippet per file, the primary span's file first, each the run of
    // lines from its first mark to its last (lines between are folded).
    let mut order: Vec<usize> = Vec::new();
    for m in &marks {
        if !order.contains(&m.file) {
            order.push(m.file);
        }
    }
    let mut widest = 0;
    let mut group = Group::with_title(title);
    for file in order {
        let in_file = || marks.iter().filter(move |m| m.file == file);
        let Some(first) = in_file().min_by_key(|m| m.line) else {
            continue;
        };
        let Some(last) = in_file().max_by_key(|m| m.line) else {
            continue;
        };
        let base = first.line_start;
        let text = &files[file].text[base..last.line_end];
        widest = widest.max(text.len());
        let snippet = Snippet::source(text)
            .path(files[file].path.as_str())
            .line_start(first.line as usize)
            .annotations(in_file().map(|m| {
                let range = m.range.start - base..m.range.end - base;
                match m.label {
                    None => AnnotationKind::Primary.span(range),
                    Some(label) => AnnotationKind::Context.span(range).label(label),
                }
            }));
        group = group.element(snippet);
    }
    // Wide enough that no line is cut short.
    let renderer = Renderer::plain().term_width(widest.saturating_mul(TAB_WIDTH) + 64);
    out.push_str(&renderer.render(&[group]));
}

/// Places `span` on its line of its file: `None` when the file or the line
/// does not exist.
///
/// The span's offsets are used when its start falls on its line; otherwise
/// its column is trusted. Offsets inside a character move to the next
/// character; the mark ends at the line's end, less trailing whitespace
/// when the span goes on past it.
fn mark<'d>(
    files: &[SourceFile],
    lines: &mut [Option<Vec<usize>>],
    span: Span,
    label: Option<&'d str>,
) -> Option<Mark<'d>> {
    let index = span.file as usize;
    let file = files.get(index)?;
    let starts = lines
        .get_mut(index)?
        .get_or_insert_with(|| line_starts(&file.text));
    let (line_start, line_text) = source_line(&file.text, starts, span.line)?;
    let line_end = line_start + line_text.len();
    let on_line = |offset: usize| {
        let mut at = offset.clamp(line_start, line_end);
        while !file.text.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    let start_offset = span.start as usize;
    let end_offset = span.end as usize;
    let (start, end) = if (line_start..=line_end).contains(&start_offset) {
        let start = on_line(start_offset);
        let mut end = on_line(end_offset).max(start);
        if end_offset > line_end {
            // Do not mark the trailing whitespace of a span that goes on.
            let kept = file.text[start..end].trim_end().len();
            end = start + kept;
        }
        (start, end)
    } else {
        // The span's offsets do not fall on its line: trust its column.
        let before: usize = line_text
            .chars()
            .take((span.column as usize).saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        (line_start + before, line_start + before)
    };
    Some(Mark {
        file: index,
        line: span.line,
        line_start,
        line_end,
        range: start..end,
        label,
    })
}

/// Byte offsets of the starts of the lines of `text`.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The byte offset and text (without its line break) of 1-based `line`.
fn source_line<'t>(text: &'t str, starts: &[usize], line: u32) -> Option<(usize, &'t str)> {
    let start = *starts.get((line as usize).checked_sub(1)?)?;
    let rest = text.get(start..)?;
    let line_text = rest.split('\n').next().unwrap_or("");
    Some((start, line_text.strip_suffix('\r').unwrap_or(line_text)))
}

/// One diagnostic in JSON.
#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: &'static str,
    code: &'static str,
    message: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<JsonLabel<'a>>,
}

/// One label of a diagnostic in JSON.
#[derive(Serialize)]
struct JsonLabel<'a> {
    message: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
}

/// Renders diagnostics as a JSON array of
/// `{severity, code, message, file, line, column}`, in the given order, on
/// one line (no trailing newline). `file` is the file's display path (empty
/// when the span names no file); `line` and `column` are 1-based (0 when
/// unknown). A diagnostic with labels also has `labels`, an array of
/// `{message, file, line, column}` of the same meaning.
pub fn json(files: &[SourceFile], diagnostics: &[Diagnostic]) -> String {
    let path = |span: Span| {
        files
            .get(span.file as usize)
            .map_or("", |f| f.path.as_str())
    };
    let rows: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            severity: d.severity.as_str(),
            code: d.code.as_str(),
            message: &d.message,
            file: path(d.span),
            line: d.span.line,
            column: d.span.column,
            labels: d
                .labels
                .iter()
                .map(|l| JsonLabel {
                    message: &l.message,
                    file: path(l.span),
                    line: l.span.line,
                    column: l.span.column,
                })
                .collect(),
        })
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Code;

    fn file(text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            path: "policy.sluice".to_string(),
            text: text.to_string(),
        }]
    }

    fn span(start: u32, end: u32, line: u32, column: u32) -> Span {
        Span {
            file: 0,
            start,
            end,
            line,
            column,
        }
    }

    #[test]
    fn renders_like_rustc() {
        let text = "server b { port 1 }\nserver a { port 0 }\n";
        let start = text.find("0 }").unwrap() as u32;
        let d = Diagnostic::new(
            Code::InvalidValue,
            span(start, start + 1, 2, 17),
            "port `0` is out of range (1 to 65535)",
        );
        let out = human(&file(text), &[d]);
        assert_eq!(
            out,
            "error[invalid-value]: port `0` is out of range (1 to 65535)\n \
             --> policy.sluice:2:17\n  |\n2 | server a { port 0 }\n  |                 ^\n\nerror: 1 error\n"
        );
    }

    #[test]
    fn summary_lines() {
        let f = file("x");
        let e = Diagnostic::new(Code::Syntax, span(0, 1, 1, 1), "bad");
        let w = Diagnostic::new(Code::UnusedRoute, span(0, 1, 1, 1), "meh");
        assert_eq!(human(&f, &[]), "");
        assert!(human(&f, &[e.clone(), e.clone(), w.clone()])
            .ends_with("\nerror: 2 errors, 1 warning\n"));
        assert!(human(&f, std::slice::from_ref(&w)).ends_with("\nwarning: 1 warning\n"));
        assert!(human(&f, &[w]).starts_with("warning[unused-route]: meh\n"));
    }

    #[test]
    fn tabs_wide_spans_and_long_line_numbers() {
        let mut text = "\n".repeat(11);
        text.push_str("\tserver  web {\n  port 80\n}");
        let start = text.find("web").unwrap() as u32;
        let d = Diagnostic::new(Code::DuplicateName, span(start, start + 3, 12, 10), "dup");
        let out = human(&file(&text), &[d]);
        let want = format!(
            "\n  --> policy.sluice:12:10\n   |\n12 |     server  web {{\n   | {}^^^\n",
            " ".repeat(12)
        );
        assert!(out.contains(&want), "{out}");
        // A multi-line span is underlined to the end of its first line.
        let start = text.find("server").unwrap() as u32;
        let d = Diagnostic::new(
            Code::DuplicateName,
            span(start, text.len() as u32, 12, 2),
            "dup",
        );
        let out = human(&file(&text), &[d]);
        let want = format!("\n   | {}{}\n", " ".repeat(4), "^".repeat(13));
        assert!(out.contains(&want), "{out}");
    }

    #[test]
    fn odd_spans_do_not_panic() {
        let f = file("é\r\nb");
        let spans = [
            span(0, 0, 1, 1),
            span(1, 2, 1, 2), // inside a character
            span(100, 200, 9, 9),
            span(4, 2, 2, 1),
            span(0, 0, 0, 0),
            Span {
                file: 7,
                ..span(0, 1, 1, 1)
            },
        ];
        for s in spans {
            let d = Diagnostic::new(Code::Io, s, "x");
            let out = human(&f, std::slice::from_ref(&d));
            assert!(out.starts_with("error[io]: x\n"));
            let _ = json(&f, &[d]);
            let labelled = Diagnostic::new(Code::Io, span(0, 1, 1, 1), "x").with_label(s, "y");
            assert!(human(&f, std::slice::from_ref(&labelled)).starts_with("error[io]: x\n"));
            let _ = json(&f, &[labelled]);
        }
        let out = human(&f, &[Diagnostic::new(Code::Syntax, span(4, 5, 2, 1), "x")]);
        assert!(out.contains("2 | b\n  | ^\n"), "{out}");
        let out = human(&f, &[Diagnostic::new(Code::Syntax, span(0, 2, 1, 1), "x")]);
        assert!(out.contains("1 | é\n  | ^\n"), "{out}");
    }

    #[test]
    fn labels_show_second_places() {
        let text = "server a { port 1 }\nserver a { port 2 }\n";
        let d = Diagnostic::new(
            Code::DuplicateName,
            span(27, 28, 2, 8),
            "server `a` is already declared (line 1)",
        )
        .with_label(span(7, 8, 1, 8), "first declared here");
        assert_eq!(
            human(&file(text), &[d]),
            "error[duplicate-name]: server `a` is already declared (line 1)\n \
             --> policy.sluice:2:8\n  |\n1 | server a { port 1 }\n  |        - first declared here\n\
             2 | server a { port 2 }\n  |        ^\n\nerror: 1 error\n"
        );
        // A label in another file gets its own snippet; one whose place is
        // unknown is left out.
        let files = vec![
            SourceFile {
                path: "a.sluice".to_string(),
                text: "server a { port 1 }".to_string(),
            },
            SourceFile {
                path: "b.sluice".to_string(),
                text: "\nserver a { port 2 }".to_string(),
            },
        ];
        let d = Diagnostic::new(
            Code::DuplicateName,
            Span {
                file: 1,
                ..span(8, 9, 2, 8)
            },
            "dup",
        )
        .with_label(span(7, 8, 1, 8), "first declared here")
        .with_label(span(0, 0, 0, 0), "nowhere");
        let out = human(&files, &[d]);
        assert_eq!(
            out,
            "error[duplicate-name]: dup\n \
             --> b.sluice:2:8\n  |\n2 | server a { port 2 }\n  |        ^\n  |\n \
             ::: a.sluice:1:8\n  |\n1 | server a { port 1 }\n  |        - first declared here\n\n\
             error: 1 error\n"
        );
    }

    #[test]
    fn long_lines_are_shown_whole() {
        let text = format!(
            "server a {{ route r {{ path regex \"{}\" }} }} x",
            "a".repeat(300)
        );
        let at = text.len() as u32 - 1;
        let d = Diagnostic::new(Code::Syntax, span(at, at + 1, 1, at + 1), "x");
        let out = human(&file(&text), &[d]);
        assert!(out.contains(&format!("1 | {text}\n")), "{out}");
    }

    #[test]
    fn random_texts_and_spans_do_not_panic() {
        const PIECES: [&str; 16] = [
            "server",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\r",
            "é",
            "漢",
            "\u{200d}",
            "👩‍👩‍👧",
            "\u{301}",
            "\0",
            "\x1b",
            "{",
            "\u{feff}",
            "\u{202e}",
        ];
        let mut rng = sluice_testkit::Rng::new(10);
        let text = |rng: &mut sluice_testkit::Rng| {
            let n = rng.below(40);
            (0..n).map(|_| *rng.pick(&PIECES)).collect::<String>()
        };
        for _ in 0..2000 {
            let files: Vec<SourceFile> = ["a.sluice", "b.sluice"]
                .iter()
                .map(|path| SourceFile {
                    path: path.to_string(),
                    text: text(&mut rng),
                })
                .collect();
            let random_span = |rng: &mut sluice_testkit::Rng| {
                let file = rng.below(3) as u32;
                let len = files.get(file as usize).map_or(0, |f| f.text.len());
                if rng.chance(50) && (file as usize) < files.len() {
                    // A span as the parser makes them.
                    let text = &files[file as usize].text;
                    let start = rng.range(0, len);
                    let end = rng.range(start, len);
                    crate::source::LineIndex::new(text).span(text, file, start, end)
                } else {
                    Span {
                        file,
                        start: rng.range(0, len + 3) as u32,
                        end: rng.range(0, len + 3) as u32,
                        line: rng.below(6) as u32,
                        column: rng.below(50) as u32,
                    }
                }
            };
            let mut d = Diagnostic::new(Code::DuplicateName, random_span(&mut rng), "x");
            for _ in 0..rng.below(3) {
                d = d.with_label(random_span(&mut rng), "y");
            }
            let out = human(&files, std::slice::from_ref(&d));
            assert!(out.starts_with("error[duplicate-name]: x\n"), "{out}");
            assert!(json(&files, &[d]).starts_with('['));
        }
    }

    #[test]
    fn json_rows() {
        let f = file("server a { port 0 }");
        let d = Diagnostic::new(
            Code::InvalidValue,
            span(16, 17, 1, 17),
            "port `0` is \"bad\"",
        );
        let out = json(&f, &[d]);
        assert_eq!(
            out,
            r#"[{"severity":"error","code":"invalid-value","message":"port `0` is \"bad\"","file":"policy.sluice","line":1,"column":17}]"#
        );
        assert_eq!(json(&f, &[]), "[]");
        let d = Diagnostic::new(Code::DuplicateName, span(7, 8, 1, 8), "dup")
            .with_label(span(0, 6, 1, 1), "first declared here");
        assert_eq!(
            json(&f, &[d]),
            r#"[{"severity":"error","code":"duplicate-name","message":"dup","file":"policy.sluice","line":1,"column":8,"labels":[{"message":"first declared here","file":"policy.sluice","line":1,"column":1}]}]"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["line"], 1);
    }
}
