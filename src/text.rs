//! Text normalisation shared by the knowledge base, the dialogue policy and the intent model: one place decides
//! what "the same words" means (case, accents, punctuation, whitespace).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-case hex of `bytes` (digests, signatures, ids made from them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex text (either case); `None` for an odd length or a character that is no hex digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Lowercase, accents folded ("één" -> "een"), punctuation and symbols turned into single spaces, trimmed.
/// Keeps letters and digits of every script; emoji and symbols become separators.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // "m'n", "don't": keep words whole rather than splitting off a lone letter.
            continue;
        } else {
            pending_space = true;
        }
    }
    out
}

/// The first control character in `text` that no caller may send: every Unicode control character (C0, DEL,
/// C1) except tab, line feed and carriage return, which plain text and pasted messages legitimately carry. With
/// `multiline: false` (ids, names) those three are refused too. Stored raw, the others corrupt transcripts, logs
/// and exports, and NUL is refused by PostgreSQL outright.
pub fn control_character(text: &str, multiline: bool) -> Option<char> {
    text.chars().find(|&c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

/// The one check of text from a caller for control characters (`control_character`), as a field error.
pub fn check_characters(field: &'static str, text: &str, multiline: bool) -> crate::error::Result<()> {
    match control_character(text, multiline) {
        Some(c) => {
            Err(crate::error::Error::invalid(field, format!("contains the control character U+{:04X}", c as u32)))
        }
        None => Ok(()),
    }
}

/// The normalised words of `text`.
pub fn words(text: &str) -> Vec<String> {
    normalize(text).split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// Cuts `text` to at most `max_chars` characters, at the end of a sentence when one ends in the second half of
/// the allowed length, else at a word boundary, and marks the cut with an ellipsis.
pub fn shorten(text: &str, max_chars: usize) -> String {
    if max_chars == 0 || text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let budget: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    let sentence_end = budget.rfind(['.', '!', '?']).filter(|&i| i >= budget.len() / 2);
    if let Some(end) = sentence_end {
        return budget[..=end].to_owned();
    }
    let cut = budget.rfind(' ').unwrap_or(budget.len());
    format!("{}…", budget[..cut].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_case_accents_and_punctuation() {
        assert_eq!(normalize("  Één   VRAAG?!  Café-bezoek "), "een vraag cafe bezoek");
        assert_eq!(normalize("Waar is m'n pakket??"), "waar is mn pakket");
        assert_eq!(normalize("🙂🙂"), "");
        assert_eq!(words("Hallo, hoe gaat het?"), vec!["hallo", "hoe", "gaat", "het"]);
    }

    #[test]
    fn control_characters_are_found_except_line_breaks_and_tabs_in_text() {
        assert_eq!(control_character("a\u{0}b", true), Some('\u{0}'));
        assert_eq!(control_character("x\u{7f}", true), Some('\u{7f}'));
        assert_eq!(control_character("x\u{85}", true), Some('\u{85}'));
        assert_eq!(control_character("line\r\nnext\tcell", true), None);
        assert_eq!(control_character("id\n", false), Some('\n'));
        assert_eq!(control_character("Één 🙂 مرحبا", false), None);
    }

    #[test]
    fn shorten_prefers_sentence_boundaries() {
        let text = "First sentence here. Second sentence is rather long and goes on.";
        assert_eq!(shorten(text, 30), "First sentence here.");
        assert_eq!(shorten("one two three four", 10), "one two…");
        assert_eq!(shorten("short", 10), "short");
        assert!(shorten(&"x".repeat(50), 10).chars().count() <= 10);
    }
}

/// The configured bounds on what callers send (`[limits]`), and the checks every service applies with them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_id_bytes: usize,
    pub max_message_bytes: usize,
}

impl Limits {
    /// An id from a caller (conversation, hand-off, customer, client message, agent, skill) must be given, fit
    /// the configured limit and be one line without control characters.
    pub fn check_id(&self, field: &'static str, value: &str) -> crate::error::Result<()> {
        if value.trim().is_empty() {
            return Err(crate::error::Error::invalid(field, "is required"));
        }
        if value.len() > self.max_id_bytes {
            return Err(crate::error::Error::invalid(field, format!("longer than {} bytes", self.max_id_bytes)));
        }
        check_characters(field, value, false)
    }

    /// A message text must have content and fit the configured limit.
    pub fn check_text(&self, text: &str) -> crate::error::Result<()> {
        if text.trim().is_empty() {
            return Err(crate::error::Error::invalid("text", "is empty"));
        }
        self.check_text_limit("text", text)
    }

    /// Free text from a caller (a message, a comment, a note) fits the configured limit and carries no control
    /// characters but tab and line breaks.
    pub fn check_text_limit(&self, field: &'static str, text: &str) -> crate::error::Result<()> {
        if text.len() > self.max_message_bytes {
            return Err(crate::error::Error::invalid(field, format!("longer than {} bytes", self.max_message_bytes)));
        }
        check_characters(field, text, true)
    }
}
