//! The held-out customer messages (`tests/data/heldout.tsv`: lang, expected, text) that the benches send.

use std::path::{Path, PathBuf};

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One labelled customer message.
#[derive(Debug, Clone)]
pub struct Phrasing {
    pub language: String,
    pub text: String,
}

/// Reads the file, skipping the header; panics with the path on a bad file (this is a bench, not a service).
pub fn load(path: &Path) -> Vec<Phrasing> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split('\t');
            let (language, _expected, text) = (columns.next()?, columns.next()?, columns.next()?);
            Some(Phrasing { language: language.to_owned(), text: text.to_owned() })
        })
        .collect()
}

/// The texts in `language`.
pub fn texts_in(phrasings: &[Phrasing], language: &str) -> Vec<String> {
    phrasings.iter().filter(|p| p.language == language).map(|p| p.text.clone()).collect()
}
