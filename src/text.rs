//! Text from images, stubs and registries as bootseal's messages show it.
//!
//! A file name, PE section name or platform string comes from whoever built the input; shown
//! raw, a newline or escape sequence in it could break a one-line error or forge lines of
//! output. Control characters are shown escaped (`\n`, `\u{1b}`); everything else, including
//! non-ASCII text, as it is.

/// `text` with its control characters escaped.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn only_control_characters_are_escaped() {
        assert_eq!(
            escape_controls("usr/ünïcode \"q\" \\"),
            "usr/ünïcode \"q\" \\"
        );
        let shown = escape_controls("a\nb\n\u{1b}[31mred\0\u{85}");
        assert_eq!(shown, "a\\nb\\n\\u{1b}[31mred\\0\\u{85}");
        assert!(!shown.chars().any(char::is_control));
    }
}
