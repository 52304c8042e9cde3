//! Text that came from outside (a file, a target) made fit to show: which characters are hidden
//! (controls, bidirectional overrides and isolates) and how to write them visibly.

use std::borrow::Cow;

/// Characters that change how the text around them looks without being seen: controls, and the
/// bidirectional overrides, isolates and marks.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// `s` fit for one line of a terminal: line breaks and tabs written `\\n`, `\\r`, `\\t`, other
/// hidden characters as `\\u{…}`, so one message stays one line and nothing quoted can rewrite the
/// terminal.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_characters_are_written_out() {
        assert_eq!(super::visible("a\nb\u{202e}c\0"), "a\\nb\\u{202e}c\\u{0}");
        assert_eq!(super::visible("plain"), "plain");
    }
}
