//! Outside text made safe to print: process names, command lines, paths, user names, the
//! operator's own filters and OS error messages all reach the output through [`shown`] or
//! [`shown_bytes`].
//!
//! Nagios reads a `|` in any line as the start of perfdata and a line break as the end of the
//! status line, so a process named `x|y\nWORKERS OK` could forge both. Every `|`, control
//! character and byte that is not UTF-8 is written as a `\xNN` (or `\u{...}`) escape, so the
//! text is always one line without a pipe. Escaping is idempotent (a backslash stays as it is),
//! so text escaped where it was read (a name's invalid bytes) can safely pass the escaping of
//! the output again.

use std::fmt::Write as _;

/// `bytes` (a comm, a command line, a path as the kernel gave it) as one printable line.
pub fn shown_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&shown(chunk.valid()));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// `text` from outside this program as one printable line with no `|`.
pub fn shown(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if c.is_ascii() && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `|` starts perfdata; control characters (line breaks among them, and the Unicode line and
/// paragraph separators some viewers break on) end or garble the line.
fn needs_escape(c: char) -> bool {
    matches!(c, '|' | '\u{2028}' | '\u{2029}') || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(shown("nginx: worker process"), "nginx: worker process");
        assert_eq!(shown("worker-aéé"), "worker-aéé");
        assert_eq!(shown_bytes(b"php-fpm8.2"), "php-fpm8.2");
    }

    #[test]
    fn pipes_and_line_breaks_are_escaped() {
        assert_eq!(shown("x|y\nWORKERS OK"), "x\\x7cy\\x0aWORKERS OK");
        assert_eq!(shown("a\rb\tc\u{7f}"), "a\\x0db\\x09c\\x7f");
        assert_eq!(shown("a\u{2028}b\u{85}"), "a\\u{2028}b\\u{85}");
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        // "worker-aéééééé" cut by the kernel at 15 bytes, inside the last é
        let comm = &"worker-aéééééé".as_bytes()[..15];
        assert_eq!(shown_bytes(comm), "worker-aééé\\xc3");
        assert_eq!(shown_bytes(b"\xff|\n"), "\\xff\\x7c\\x0a");
    }

    #[test]
    fn escaped_text_never_has_a_pipe_or_a_line_break() {
        for input in [&b"a|b"[..], b"\n\r\x0b\x0c", b"\xe2\x80\xa8", b"|\xff|"] {
            let out = shown_bytes(input);
            assert!(!out.contains(['|', '\n', '\r']), "{out:?}");
            assert_eq!(shown(&out), out, "escaping twice changes nothing");
        }
    }
}
