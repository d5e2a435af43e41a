//! Hostile input, generated: the redactor, the text normaliser and the knowledge-base parser never panic and never
//! blow up what they are given, whatever bytes arrive.

use std::path::PathBuf;

use loket::knowledge::parse_files;
use loket::privacy::redact;
use loket::text::normalize;
use proptest::prelude::*;

/// Text that looks like what the redactor hunts for, mixed with arbitrary characters.
fn suspicious() -> impl Strategy<Value = String> {
    let pieces = prop::collection::vec(
        prop_oneof![
            "[0-9 .+-]{1,30}",
            "[A-Za-z]{2}[0-9]{2}[ A-Z0-9]{0,40}",
            "[a-z.]{1,10}@[a-z]{1,10}\\\\.[a-z]{2,4}",
            "[1-9][0-9]{3} ?[A-Z]{2} [0-9]{1,4}",
            any::<String>(),
        ],
        0..12,
    );
    pieces.prop_map(|p| p.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn redaction_never_panics_and_never_grows_text_much(text in suspicious()) {
        let out = redact(&text);
        prop_assert!(out.len() <= 2 * text.len() + 16, "{} -> {}", text.len(), out.len());
        // Idempotent: redacting twice changes nothing more.
        prop_assert_eq!(redact(&out), out.clone());
    }

    #[test]
    fn normalising_never_panics_and_stays_bounded(text in any::<String>()) {
        let out = normalize(&text);
        // NFKD can expand one character to 18 (U+FDFA); lowercase adds at most a combining mark.
        prop_assert!(out.chars().count() <= 20 * text.chars().count() + 1);
        prop_assert_eq!(normalize(&out), out.clone(), "normal form is stable");
    }

    #[test]
    fn the_knowledge_base_parser_reports_instead_of_panicking(text in prop_oneof![
        any::<String>(),
        "category: [a-z]{1,8}\\nskill: [a-z]{1,8}\\nentries:\\n(  - id: [a-z-]{0,8}\\n(    [a-z]{2}:\\n      question: .{0,20}\\n      phrasings: \\[.{0,20}\\]\\n      answer: .{0,20}\\n){0,2}){0,3}",
    ]) {
        let languages = vec!["nl".to_string(), "en".to_string()];
        match parse_files(&[(PathBuf::from("faq/x.yaml"), text)], &languages) {
            Ok(faqs) => prop_assert!(faqs.iter().all(|f| languages.iter().all(|l| f.translations.contains_key(l)))),
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }
}
