//! What a user sees when a deployment file is wrong: one [`Diagnostic`] per problem, each with
//! the file, line and column, the source line with a caret under the culprit and a hint on what
//! to do; all the problems of one file are gathered in [`Diagnostics`], which renders them as
//! text for a terminal and as `::error` workflow commands for GitHub Actions.

use std::fmt;

use crate::located::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is not valid; nothing runs.
    Error,
    /// The file is valid, but something in it is ignored or probably not what was meant.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in a deployment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where, when the problem has a place in the file.
    pub span: Option<Span>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// Adds a hint on what to do.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The lines of a text, found by number without scanning the text again each time (a large file
/// has many places to look up).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// The byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = Vec::new();
        if !text.is_empty() {
            starts.push(0);
            starts.extend(
                text.match_indices('\n')
                    .map(|(at, _)| at + 1)
                    .filter(|&start| start < text.len()),
            );
        }
        LineIndex { text, starts }
    }

    /// Line `number` (counted from 1) without its line ending, as `str::lines` gives it.
    pub(crate) fn line(&self, number: usize) -> Option<&'a str> {
        let start = *self.starts.get(number.checked_sub(1)?)?;
        let end = self.starts.get(number).copied().unwrap_or(self.text.len());
        let line = &self.text[start..end];
        Some(match line.strip_suffix('\n') {
            Some(line) => line.strip_suffix('\r').unwrap_or(line),
            None => line,
        })
    }
}

/// Every problem found in one file, with the file's name and text to render them against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The file's name as given (a path, or a label such as `<stdin>`).
    pub file: String,
    /// The file's text.
    pub source: String,
    /// The problems, in file order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty list for `file`.
    pub fn new(file: impl Into<String>, source: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            source: source.into(),
            items: Vec::new(),
        }
    }

    /// Adds one problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// How many problems have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorts by place in the file (problems without a place first) and drops exact repeats.
    pub(crate) fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            (
                d.span.map(|s| (s.line, s.col)).unwrap_or((0, 0)),
                d.severity,
            )
        });
        self.items.dedup();
    }

    /// The problems as GitHub Actions workflow commands (`::error file=...,line=...,col=...::...`),
    /// one a line, so they show as annotations on the file.
    pub fn github_annotations(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            let mut props = format!("file={}", escape_property(&self.file));
            if let Some(span) = d.span {
                props.push_str(&format!(",line={},col={}", span.line, span.col));
            }
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            out.push_str(&format!(
                "::{} {props}::{}\n",
                d.severity.as_str(),
                escape_data(&message)
            ));
        }
        out
    }

    /// A one-line summary such as `deploy.yml: 2 errors, 1 warning`.
    pub fn summary(&self) -> String {
        let errors = self.count(Severity::Error);
        let warnings = self.count(Severity::Warning);
        format!(
            "{}: {} {}, {} {}",
            self.file,
            errors,
            plural(errors, "error", "errors"),
            warnings,
            plural(warnings, "warning", "warnings")
        )
    }

    fn render_one(
        &self,
        d: &Diagnostic,
        lines: &LineIndex<'_>,
        out: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        writeln!(out, "{}: {}", d.severity.as_str(), d.message)?;
        match d.span {
            Some(span) => {
                let gutter = span.line.to_string().len();
                let pad = " ".repeat(gutter);
                writeln!(out, "{pad}--> {}:{}:{}", self.file, span.line, span.col)?;
                if let Some(line) = lines.line(span.line) {
                    // Tabs become one space each so the caret stays under the column.
                    let shown: String = line
                        .chars()
                        .map(|c| if c == '\t' { ' ' } else { c })
                        .collect();
                    let width = shown.chars().count();
                    let start = span.col.saturating_sub(1).min(width);
                    let len = span.len.min(width.saturating_sub(start)).max(1);
                    writeln!(out, "{pad} |")?;
                    writeln!(out, "{} | {}", span.line, shown.trim_end())?;
                    writeln!(out, "{pad} | {}{}", " ".repeat(start), "^".repeat(len))?;
                }
                if let Some(help) = &d.help {
                    writeln!(out, "{pad} = help: {help}")?;
                }
            }
            None => {
                writeln!(out, "  --> {}", self.file)?;
                if let Some(help) = &d.help {
                    writeln!(out, "   = help: {help}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostics {
    /// Every problem with its source line and caret, a blank line between them, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = LineIndex::new(&self.source);
        for d in &self.items {
            self.render_one(d, &lines, f)?;
            writeln!(f)?;
        }
        write!(f, "{}", self.summary())
    }
}

impl std::error::Error for Diagnostics {}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Escapes the message of a GitHub Actions workflow command (the runner's `escapeData`): `%`,
/// CR and LF, so a message shows as written and cannot start a command of its own. The one
/// copy of this rule: every crate that writes workflow commands uses it.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property of a workflow command (the runner's `escapeProperty`): as
/// [`escape_data`], plus `:` and `,`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagnostics {
        let mut d = Diagnostics::new("deploy.yml", "a: 1\n\tbad: 2\n");
        d.push(
            Diagnostic::error(
                Some(Span {
                    line: 2,
                    col: 2,
                    len: 3,
                }),
                "unknown key `bad`",
            )
            .with_help("remove it, 100% sure"),
        );
        d.push(Diagnostic::warning(None, "no place"));
        d
    }

    #[test]
    fn line_index_gives_the_lines_of_str_lines() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\n\nb",
            "a\r\nb\r\n",
            "a\rb\r",
            "é\n\n\tx\n\n",
        ] {
            let index = LineIndex::new(text);
            let expected: Vec<&str> = text.lines().collect();
            let found: Vec<&str> = (1..=expected.len() + 1)
                .map_while(|n| index.line(n))
                .collect();
            assert_eq!(found, expected, "{text:?}");
            assert_eq!(index.line(0), None);
        }
    }

    #[test]
    fn renders_caret_under_the_column() {
        let text = sample().to_string();
        assert!(text.contains("2 |  bad: 2\n  |  ^^^\n"), "{text}");
        assert!(text.contains("--> deploy.yml:2:2"), "{text}");
        assert!(text.ends_with("deploy.yml: 1 error, 1 warning"), "{text}");
    }

    #[test]
    fn annotations_escape_github_command_syntax() {
        let mut d = sample();
        d.file = "dir,with:odd.yml".to_owned();
        let text = d.github_annotations();
        assert_eq!(
            text,
            "::error file=dir%2Cwith%3Aodd.yml,line=2,col=2::unknown key `bad`%0Ahelp: remove it, 100%25 sure\n\
             ::warning file=dir%2Cwith%3Aodd.yml::no place\n"
        );
    }
}
