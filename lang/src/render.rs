//! Rendering diagnostics: rustc-like text, or JSON.

use crate::ast::{SourceFile, Span};
use crate::diagnostic::{Diagnostic, Severity};
use serde::Serialize;
use std::fmt::Write as _;

/// Columns a tab takes when a source line is shown.
const TAB_WIDTH: usize = 4;

/// Renders diagnostics like rustc, in the given order:
///
/// ```text
/// error[invalid-value]: port `0` is out of range (1 to 65535)
///  --> policy.sluice:2:17
///   |
/// 2 | server a { port 0 }
///   |                 ^
///
/// error: 1 error
/// ```
///
/// Each diagnostic is its header, its location, the source line and carets
/// under the span (at least one; a span that goes on past its first line is
/// marked to the end of that line), then a blank line. Tabs in the shown
/// line become 4 spaces and control characters `�`. A diagnostic whose file
/// or line is unknown (e.g. an `io` error) shows only its header and, when
/// the file is known, its path.
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
        out.push('\n');
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

/// One diagnostic, ending with a newline.
fn render_one(
    out: &mut String,
    files: &[SourceFile],
    lines: &mut [Option<Vec<usize>>],
    d: &Diagnostic,
) {
    let _ = writeln!(
        out,
        "{}[{}]: {}",
        d.severity.as_str(),
        d.code.as_str(),
        d.message
    );
    let index = d.span.file as usize;
    let (Some(file), Some(starts)) = (files.get(index), lines.get_mut(index)) else {
        return;
    };
    let starts = starts.get_or_insert_with(|| line_starts(&file.text));
    let Some((line_start, line_text)) = source_line(&file.text, starts, d.span.line) else {
        if d.span.line == 0 {
            let _ = writeln!(out, " --> {}", file.path);
        } else {
            let _ = writeln!(out, " --> {}:{}:{}", file.path, d.span.line, d.span.column);
        }
        return;
    };
    let number = d.span.line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(
        out,
        "{pad}--> {}:{}:{}",
        file.path, d.span.line, d.span.column
    );
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{number} | {}", display_line(line_text));
    let (before, width) = caret_columns(d.span, line_start, line_text);
    let _ = writeln!(
        out,
        "{pad} | {}{}",
        " ".repeat(before),
        "^".repeat(width.max(1))
    );
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

/// Display width of one character of a shown line.
fn char_width(c: char) -> usize {
    if c == '\t' {
        TAB_WIDTH
    } else {
        1
    }
}

/// A source line as shown: tabs expanded, control characters replaced.
fn display_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    for c in line.chars() {
        if c == '\t' {
            s.push_str(&" ".repeat(TAB_WIDTH));
        } else if c.is_control() {
            s.push('\u{FFFD}');
        } else {
            s.push(c);
        }
    }
    s
}

/// Display columns before the span and under it, on the span's first line.
fn caret_columns(span: Span, line_start: usize, line: &str) -> (usize, usize) {
    let start = span.start as usize;
    let end = span.end as usize;
    let line_end = line_start + line.len();
    let mut before = 0;
    let mut width = 0;
    if (line_start..=line_end).contains(&start) {
        for (i, c) in line.char_indices() {
            let at = line_start + i;
            if at < start {
                before += char_width(c);
            } else if at < end {
                width += char_width(c);
            }
        }
        // Do not underline the trailing whitespace of a span that goes on.
        if end > line_end {
            let trailing: usize = line
                .get(start.saturating_sub(line_start)..)
                .unwrap_or("")
                .chars()
                .rev()
                .take_while(|c| c.is_whitespace())
                .map(char_width)
                .sum();
            width = width.saturating_sub(trailing);
        }
    } else {
        // The span's offsets do not fall on its line: trust its column.
        before = line
            .chars()
            .take((span.column as usize).saturating_sub(1))
            .map(char_width)
            .sum();
    }
    (before, width)
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
}

/// Renders diagnostics as a JSON array of
/// `{severity, code, message, file, line, column}`, in the given order, on
/// one line (no trailing newline). `file` is the file's display path (empty
/// when the span names no file); `line` and `column` are 1-based (0 when
/// unknown).
pub fn json(files: &[SourceFile], diagnostics: &[Diagnostic]) -> String {
    let rows: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            code: d.code.as_str(),
            message: &d.message,
            file: files
                .get(d.span.file as usize)
                .map_or("", |f| f.path.as_str()),
            line: d.span.line,
            column: d.span.column,
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
        }
        let out = human(&f, &[Diagnostic::new(Code::Syntax, span(4, 5, 2, 1), "x")]);
        assert!(out.contains("2 | b\n  | ^\n"), "{out}");
        let out = human(&f, &[Diagnostic::new(Code::Syntax, span(0, 2, 1, 1), "x")]);
        assert!(out.contains("1 | é\n  | ^\n"), "{out}");
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
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["line"], 1);
    }
}
