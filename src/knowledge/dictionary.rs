//! A language's word list (`knowledge-base/dictionaries/<language>.txt.zst`): which words are real words of the
//! language, so the speller corrects typos and never a word it merely has not seen. Read-only after loading.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tantivy::query::DfaWrapper;
use tantivy_fst::{IntoStreamer, Map, MapBuilder, Streamer};

use super::index::{analyzer, tokens};

/// Shortest part of a compound: shorter "words" in the lists ("ik", "ei", "re") split too many typos.
const MIN_COMPOUND_PART_CHARS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("not UTF-8 text")]
    NotText,
    #[error("cannot build the word set: {0}")]
    Build(#[from] tantivy_fst::Error),
}

/// The words of one language, folded the way the index folds message words (lowercase, accents removed).
pub struct Dictionary {
    /// An FST (the structure of tantivy's own term dictionary): small in memory, and searchable with the same
    /// Levenshtein automata as the index's vocabulary. The values are unused.
    words: Map<Vec<u8>>,
    /// Whether the language writes compounds as one word (Dutch "retourlabel"): then a word made of two listed
    /// words counts as known, since no list holds every compound.
    compounds: bool,
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary").field("words", &self.words.len()).field("compounds", &self.compounds).finish()
    }
}

/// Dictionaries already read by this process, by path, with the file's length and modification time: tests and
/// the CLI build several knowledge bases from the same files, and reading a list costs a few hundred milliseconds.
type Loaded = HashMap<PathBuf, (u64, Option<SystemTime>, Arc<Dictionary>)>;
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

impl Dictionary {
    /// The words of `words` (any case, accents allowed), one word per token.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>, compounds: bool) -> Dictionary {
        let surface = analyzer(None);
        let mut folded: Vec<String> = words.into_iter().flat_map(|word| tokens(&surface, word)).collect();
        Self::from_folded(&mut folded, compounds)
    }

    fn from_folded(folded: &mut Vec<String>, compounds: bool) -> Dictionary {
        folded.sort_unstable();
        folded.dedup();
        let mut builder = MapBuilder::memory();
        // Sorted and deduplicated above, so inserting cannot fail; an empty set is still a valid dictionary.
        let _ = builder.extend_iter(folded.iter().map(|word| (word, 0)));
        let words = builder.into_inner().and_then(Map::from_bytes).unwrap_or_else(|_| empty_map());
        Dictionary { words, compounds }
    }

    /// Reads a word list: one word per line, plain (`.txt`) or zstd-compressed (`.zst`). Lines with spaces or
    /// punctuation contribute each of their words.
    pub fn read(path: &Path, compounds: bool) -> Result<Dictionary, DictionaryError> {
        let bytes = std::fs::read(path)?;
        let bytes = match path.extension() {
            Some(ext) if ext == "zst" => zstd::stream::decode_all(bytes.as_slice())?,
            _ => bytes,
        };
        let text = String::from_utf8(bytes).map_err(|_| DictionaryError::NotText)?;
        // One pass of the index's own analyzer over the whole list folds every word exactly as a message's.
        let mut folded = tokens(&analyzer(None), &text);
        Ok(Self::from_folded(&mut folded, compounds))
    }

    /// [`Dictionary::read`], shared with every earlier read of the same unchanged file in this process.
    pub fn read_shared(path: &Path, compounds: bool) -> Result<Arc<Dictionary>, DictionaryError> {
        let metadata = std::fs::metadata(path)?;
        let stamp = (metadata.len(), metadata.modified().ok());
        let key = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((len, modified, dictionary)) = loaded.get_or_insert_default().get(&key)
            && (*len, *modified) == stamp
            && dictionary.compounds == compounds
        {
            return Ok(Arc::clone(dictionary));
        }
        // Read under the lock: two knowledge bases starting together read the file once.
        let dictionary = Arc::new(Self::read(path, compounds)?);
        loaded.get_or_insert_default().insert(key, (stamp.0, stamp.1, Arc::clone(&dictionary)));
        Ok(dictionary)
    }

    /// Number of distinct folded words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether `word` (folded) is a word of the language: listed, or a compound of two listed words.
    pub fn knows(&self, word: &str) -> bool {
        self.lists(word) || self.is_compound(word)
    }

    /// Whether `word` (folded) is in the list itself.
    pub fn lists(&self, word: &str) -> bool {
        self.words.contains_key(word)
    }

    /// Whether the language writes compounds as one word and `word` is two listed words, each at least
    /// [`MIN_COMPOUND_PART_CHARS`] long, optionally joined by the linking "s" ("bestelling-s-nummer").
    pub fn is_compound(&self, word: &str) -> bool {
        if !self.compounds {
            return false;
        }
        let boundaries: Vec<usize> = word.char_indices().map(|(at, _)| at).collect();
        if boundaries.len() < 2 * MIN_COMPOUND_PART_CHARS {
            return false;
        }
        let listed = |part: &str| self.words.contains_key(part);
        boundaries[MIN_COMPOUND_PART_CHARS..=boundaries.len() - MIN_COMPOUND_PART_CHARS].iter().any(|&at| {
            let (head, tail) = word.split_at(at);
            if !listed(head) {
                return false;
            }
            listed(tail)
                || tail
                    .strip_prefix('s')
                    .is_some_and(|rest| rest.chars().count() >= MIN_COMPOUND_PART_CHARS && listed(rest))
        })
    }

    /// The listed words the automaton accepts (those within its edit distance of its word), in byte order.
    pub(super) fn matching(&self, automaton: &DfaWrapper) -> Vec<String> {
        let mut stream = self.words.search(automaton).into_stream();
        let mut found = Vec::new();
        while let Some((word, _)) = stream.next() {
            if let Ok(word) = std::str::from_utf8(word) {
                found.push(word.to_owned());
            }
        }
        found
    }
}

fn empty_map() -> Map<Vec<u8>> {
    Map::from_iter(std::iter::empty::<(&[u8], u64)>()).expect("an empty map always builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dutch() -> Dictionary {
        Dictionary::from_words(["bestelling", "nummer", "retour", "label", "Maan", "één", "ik", "re"], true)
    }

    #[test]
    fn words_are_folded_like_message_words() {
        let d = dutch();
        assert!(d.knows("maan") && d.knows("een"));
        assert!(!d.knows("Maan"), "lookups take folded words");
        assert_eq!(d.len(), 8);
    }

    #[test]
    fn a_compound_of_two_listed_words_is_known() {
        let d = dutch();
        assert!(d.knows("retourlabel"));
        assert!(d.knows("bestellingsnummer"), "with the linking s");
        assert!(d.knows("bestellingnummer"));
        assert!(!d.knows("retourlabl"), "a typo in a part is no compound");
        assert!(!d.knows("ikre"), "parts shorter than three letters do not count");
        let english = Dictionary::from_words(["return", "label"], false);
        assert!(!english.knows("returnlabel"), "compounds only where the language writes them as one word");
    }

    #[test]
    fn odd_input_never_panics() {
        let d = dutch();
        for word in ["", "é", "ééééééé", "日本語日本語", "🙂🙂🙂🙂", "a\u{301}b", &"x".repeat(10_000)]
        {
            let _ = d.knows(word);
        }
        let empty = Dictionary::from_words([], true);
        assert!(empty.is_empty() && !empty.knows("maan"));
    }

    #[test]
    fn a_compressed_list_reads_like_a_plain_one() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("xx.txt");
        std::fs::write(&plain, "Maan\naarde\nzon-ster\n").unwrap();
        let packed = dir.path().join("xx.txt.zst");
        std::fs::write(&packed, zstd::stream::encode_all(&b"Maan\naarde\nzon-ster\n"[..], 3).unwrap()).unwrap();
        for path in [&plain, &packed] {
            let d = Dictionary::read(path, false).unwrap();
            assert!(d.knows("maan") && d.knows("zon") && d.knows("ster"), "{d:?}");
        }
        std::fs::write(&plain, [0xff, 0xfe]).unwrap();
        assert!(matches!(Dictionary::read(&plain, false), Err(DictionaryError::NotText)));
        assert!(Dictionary::read(&dir.path().join("missing.txt"), false).is_err());
    }
}
