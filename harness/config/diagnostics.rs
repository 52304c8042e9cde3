//! Problems found in a configuration file, each tied to a place in that file.
//!
//! Every check of a scenario or procedure reports into a [`Diagnostics`] instead of returning at the
//! first mistake, so a user sees every problem of a file at once, each as
//! `file:line:col: key.path: what is wrong — how to fix it`. This module only formats and collects;
//! it knows nothing of what a valid scenario is.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

/// The text of one configuration file and the name it is shown under.
#[derive(Debug, Clone)]
pub struct Source {
    /// How the file is named in messages: a path relative to where the user works, or
    /// `scenarios/NAME.toml` for the configurations built into the binary.
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted path of the key concerned (`load.iterations`, `steps[2].path`); empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

use crate::text::visible;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", visible(&self.file), self.line, self.col)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", visible(&self.key))?;
        }
        f.write_str(&visible(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, " — {}", visible(hint))?;
        }
        Ok(())
    }
}

/// Every problem found in one or more files, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems about one [`Source`].
#[derive(Debug)]
pub struct Diagnostics<'s> {
    source: &'s Source,
    problems: Vec<Problem>,
    /// Keys already reported as malformed and dropped before validation, so that validation does not
    /// report them a second time as missing.
    dropped: BTreeSet<String>,
}

impl<'s> Diagnostics<'s> {
    pub fn new(source: &'s Source) -> Self {
        Self {
            source,
            problems: Vec::new(),
            dropped: BTreeSet::new(),
        }
    }

    pub fn source(&self) -> &'s Source {
        self.source
    }

    /// Reports a problem at `span` (a byte range of the source).
    pub fn error(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, col) = self.source.line_col(span.start);
        self.problems.push(Problem {
            file: self.source.name.clone(),
            line,
            col,
            key: key.into(),
            message: message.into(),
            hint,
        });
    }

    /// Reports that a required key is absent from the table whose header is at `span`; silent when the
    /// key was present but already reported as malformed.
    pub fn missing(&mut self, span: Range<usize>, key: &str, hint: impl Into<String>) {
        if self.dropped.contains(key) {
            return;
        }
        let (parent, leaf) = match key.rsplit_once('.') {
            Some((parent, leaf)) => (parent, leaf),
            None => ("", key),
        };
        let message = if parent.is_empty() {
            format!("missing required key `{leaf}`")
        } else {
            format!("missing required key `{leaf}` in [{parent}]")
        };
        self.error(span, key, message, Some(hint.into()));
    }

    /// Records that `key` was malformed and removed before the typed pass.
    pub fn mark_dropped(&mut self, key: &str) {
        self.dropped.insert(key.to_string());
    }

    /// Whether `key` (or a key it contains) was dropped as malformed.
    pub fn was_dropped(&self, key: &str) -> bool {
        self.dropped.contains(key)
    }

    pub fn has_errors(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The problems in file order.
    pub fn into_problems(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|p| (p.line, p.col));
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = Source::new("f.toml", "a = 1\nbé = 'x'\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // 'é' is two bytes; the quote after "bé = " is the 6th character of line 2.
        let quote = src.text.find('\'').unwrap();
        assert_eq!(src.line_col(quote), (2, 6));
        assert_eq!(src.line_col(10_000), (3, 1));
    }

    #[test]
    fn problem_display_has_place_key_message_and_hint() {
        let p = Problem {
            file: "s.toml".into(),
            line: 3,
            col: 7,
            key: "load.rate".into(),
            message: "rate must be above zero".into(),
            hint: Some("write e.g. \"20/s\"".into()),
        };
        assert_eq!(
            p.to_string(),
            "s.toml:3:7: load.rate: rate must be above zero — write e.g. \"20/s\""
        );
    }
}
