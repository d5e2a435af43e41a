//! The rules every FAQ entry obeys wherever it comes from (a file, the API, an import): one set of checks,
//! reported as (field path, reason), so files add their line and the API names the field.

use std::collections::HashMap;

use super::{Faq, MIN_PHRASINGS};
use crate::text::{control_character, normalize};

pub const MAX_ID_CHARS: usize = 64;
/// Categories and skills.
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_QUESTION_CHARS: usize = 300;
pub const MAX_ANSWER_CHARS: usize = 4000;
pub const MAX_PHRASINGS: usize = 200;

pub use crate::error::Violation;

fn is_name(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.chars().count() <= max
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// What is wrong with one entry on its own, given the languages served.
pub fn check_entry(faq: &Faq, languages: &[String]) -> Vec<Violation> {
    let mut out = Vec::new();
    if !is_name(&faq.id, MAX_ID_CHARS) || faq.id.contains('_') {
        out.push(Violation::new(
            "id",
            format!("{:?}: use 1-{MAX_ID_CHARS} lowercase letters, digits and hyphens", faq.id),
        ));
    }
    for (field, value) in [("category", &faq.category), ("skill", &faq.skill)] {
        if !is_name(value, MAX_NAME_CHARS) {
            out.push(Violation::new(
                field,
                format!("{value:?}: use 1-{MAX_NAME_CHARS} lowercase letters, digits, hyphens and underscores"),
            ));
        }
    }
    for language in languages {
        if !faq.translations.contains_key(language) {
            out.push(Violation::new("translations", format!("missing language {language}")));
        }
    }
    for (language, translation) in &faq.translations {
        let field = |name: &str| format!("translations.{language}.{name}");
        if !languages.contains(language) {
            out.push(Violation::new(
                format!("translations.{language}"),
                format!("language {language} is not configured"),
            ));
            continue;
        }
        if translation.question.trim().is_empty() {
            out.push(Violation::new(field("question"), "is empty"));
        } else if translation.question.chars().count() > MAX_QUESTION_CHARS {
            out.push(Violation::new(field("question"), format!("longer than {MAX_QUESTION_CHARS} characters")));
        }
        if translation.answer.trim().is_empty() {
            out.push(Violation::new(field("answer"), "is empty"));
        } else if translation.answer.chars().count() > MAX_ANSWER_CHARS {
            out.push(Violation::new(field("answer"), format!("longer than {MAX_ANSWER_CHARS} characters")));
        }
        for (name, text) in [("question", &translation.question), ("answer", &translation.answer)] {
            if let Some(c) = control_character(text, true) {
                out.push(Violation::new(field(name), format!("contains the control character U+{:04X}", c as u32)));
            }
        }
        if translation.phrasings.len() < MIN_PHRASINGS {
            out.push(Violation::new(field("phrasings"), format!("needs at least {MIN_PHRASINGS}")));
        }
        if translation.phrasings.len() > MAX_PHRASINGS {
            out.push(Violation::new(field("phrasings"), format!("more than {MAX_PHRASINGS}")));
        }
        for (i, text) in translation.phrasings.iter().enumerate() {
            if text.trim().is_empty() || text.chars().count() > MAX_QUESTION_CHARS {
                out.push(Violation::new(
                    format!("{}[{i}]", field("phrasings")),
                    format!("{text:?} is empty or longer than {MAX_QUESTION_CHARS} characters"),
                ));
            } else if let Some(c) = control_character(text, true) {
                out.push(Violation::new(
                    format!("{}[{i}]", field("phrasings")),
                    format!("contains the control character U+{:04X}", c as u32),
                ));
            }
        }
    }
    out
}

/// Rules between entries: ids are unique, and one phrasing (after normalisation) does not teach two entries.
/// Returns each violation with the position in `faqs` of the entry it is reported on (the later one).
pub fn check_across<'a>(faqs: impl IntoIterator<Item = &'a Faq>) -> Vec<(usize, Violation)> {
    let mut out = Vec::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut examples: HashMap<(&str, String), &str> = HashMap::new();
    for (position, faq) in faqs.into_iter().enumerate() {
        if ids.insert(&faq.id, position).is_some() {
            out.push((position, Violation::new("id", format!("duplicate id {}", faq.id))));
        }
        for (language, translation) in &faq.translations {
            for example in translation.examples() {
                match examples.entry((language.as_str(), normalize(example))) {
                    std::collections::hash_map::Entry::Occupied(other) if *other.get() != faq.id => out.push((
                        position,
                        Violation::new(
                            format!("translations.{language}.phrasings"),
                            format!("{example:?} also belongs to entry {}", other.get()),
                        ),
                    )),
                    std::collections::hash_map::Entry::Occupied(_) => {}
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(&faq.id);
                    }
                }
            }
        }
    }
    out
}
