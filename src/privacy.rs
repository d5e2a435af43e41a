//! Personal data in free text: e-mail addresses, phone numbers (Dutch and international), IBANs (checksum),
//! payment card numbers (Luhn), Dutch citizen numbers (BSN, 11-proef) and postcodes with house numbers are
//! replaced by a placeholder before text leaves the conversation record (knowledge gaps, logs, analytics).
//! Checksums keep order numbers and amounts readable: a number is only redacted when it is what it looks like.

use std::sync::LazyLock;

use regex::{Captures, Regex};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+").expect("valid"));
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?\b").expect("valid"));
/// Runs of digits with single spaces, dots or hyphens between them (card, BSN, phone candidates).
static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:\+|\b)\d(?:[ .-]?\d){7,22}\b").expect("valid"));
static POSTCODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[1-9]\d{3} ?[A-Za-z]{2}\b(?:,? +\d{1,5}(?: ?[A-Za-z]\b)?)?").expect("valid"));

/// `text` with personal data replaced by `[email]`, `[iban]`, `[card]`, `[bsn]`, `[phone]` and `[address]`.
pub fn redact(text: &str) -> String {
    let text = EMAIL.replace_all(text, "[email]");
    let text = IBAN.replace_all(&text, |c: &Captures| keep_unless(&c[0], iban_valid(&c[0]), "[iban]"));
    let text = DIGITS.replace_all(&text, |c: &Captures| classify_digits(&c[0]).unwrap_or(&c[0]).to_owned());
    let text = POSTCODE.replace_all(&text, |c: &Captures| {
        // A postcode alone is not personal; with a house number it is an address.
        keep_unless(&c[0], c[0].chars().filter(char::is_ascii_digit).count() > 4, "[address]")
    });
    text.into_owned()
}

fn keep_unless(original: &str, redact: bool, placeholder: &str) -> String {
    if redact { placeholder.to_owned() } else { original.to_owned() }
}

fn classify_digits(candidate: &str) -> Option<&'static str> {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    let international = candidate.starts_with('+') || candidate.starts_with("00");
    if (13..=19).contains(&digits.len()) && !international && luhn_valid(&digits) {
        return Some("[card]");
    }
    if digits.len() == 9 && !international && bsn_valid(&digits) {
        return Some("[bsn]");
    }
    let dutch = digits.len() == 10 && digits[0] == 0 && digits[1] != 0;
    if dutch || (international && (10..=15).contains(&digits.len())) {
        return Some("[phone]");
    }
    None
}

fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

/// The 11-proef: 9·d1 + 8·d2 + ... + 2·d8 − 1·d9 is a multiple of 11.
fn bsn_valid(digits: &[u32]) -> bool {
    let sum: i64 = digits
        .iter()
        .enumerate()
        .map(|(i, &d)| if i == 8 { -i64::from(d) } else { (9 - i as i64) * i64::from(d) })
        .sum();
    sum % 11 == 0 && digits.iter().any(|&d| d != 0)
}

/// ISO 13616: move the first four characters to the end, letters become 10..35, the number mod 97 is 1.
fn iban_valid(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in value.to_string().chars().filter_map(|d| d.to_digit(10)) {
            remainder = (remainder * 10 + digit) % 97;
        }
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn personal_data_is_redacted_in_dutch_and_english() {
        let cases = [
            ("mail me at jan.jansen@example.nl please", "mail me at [email] please"),
            ("mijn iban is NL91 ABNA 0417 1643 00", "mijn iban is [iban]"),
            ("IBAN NL91ABNA0417164300.", "IBAN [iban]."),
            ("card 4111 1111 1111 1111 expired", "card [card] expired"),
            ("mijn bsn is 111222333", "mijn bsn is [bsn]"),
            ("bel me op 06-12345678", "bel me op [phone]"),
            ("call +31 20 123 4567 today", "call [phone] today"),
            ("ik woon op 1234 AB 56", "ik woon op [address]"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact(text), expected, "{text}");
        }
    }

    #[test]
    fn order_numbers_amounts_and_dates_are_left_alone() {
        for text in [
            "order 12345678 has not arrived",
            "bestelling 2026-11-25 van 49,95 euro",
            "my order NL12345 is late",
            "card ending 4111 1111 1111 1112",
            "artikel 123456789 is kapot",
            "postcode 1234 AB",
        ] {
            assert_eq!(redact(text), text, "{text}");
        }
    }
}
