//! Typo correction for search: a word that neither the message language's dictionary nor the knowledge base knows
//! is replaced by the closest known word. A real word is never replaced, however rare: "maan" is not a typo of
//! "maar". Knows no tantivy index; the index hands it its vocabulary through [`Vocabulary`].

use std::collections::HashMap;

use tantivy::Term;
use tantivy::query::{DfaWrapper, FuzzyTermQuery};
use tantivy::schema::Field;

use super::Dictionary;

/// Only words at least this long are corrected (short words are too ambiguous).
pub(super) const MIN_CORRECTABLE_CHARS: usize = 4;
/// Words at least this long may be two edits from their correction; shorter ones one.
const TWO_EDITS_FROM_CHARS: usize = 8;

/// The knowledge base's own words in one language.
pub(super) trait Vocabulary {
    /// In how many examples the word occurs (0: not a word of the knowledge base).
    fn frequency(&self, word: &str) -> u64;
    /// The words the automaton accepts, with their frequency.
    fn matching(&self, automaton: &DfaWrapper) -> Vec<(String, u64)>;
    /// In how many examples the word's stem occurs: a dictionary word the knowledge base uses inflected
    /// ("bestellingen" where the examples say "bestelling") helps search as much as the word itself.
    fn stem_frequency(&self, word: &str) -> u64;
}

/// A candidate correction, compared best first: fewest edits, then in the knowledge base's vocabulary, then most
/// frequent there, then byte order (so equal candidates always resolve the same way).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    edits: u8,
    not_in_vocabulary: bool,
    rarity: std::cmp::Reverse<u64>,
    word: String,
}

/// Corrects `words` (folded, as the index's surface analyzer yields them): the words, each possibly replaced, and
/// the replacements made as (typed, used). Without a dictionary every word outside the vocabulary is a suspect,
/// as it was before loket had dictionaries.
pub(super) fn correct(
    words: Vec<String>,
    vocabulary: &impl Vocabulary,
    dictionary: Option<&Dictionary>,
    memory: &Remembered,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut decided: HashMap<String, Option<String>> = HashMap::new();
    let mut corrections = Vec::new();
    let corrected = words
        .into_iter()
        .map(|word| {
            let better = decided.entry(word.clone()).or_insert_with(|| {
                let better = memory.get_or(&word, || correction(&word, vocabulary, dictionary));
                if let Some(better) = &better {
                    corrections.push((word.clone(), better.clone()));
                }
                better
            });
            better.clone().unwrap_or(word)
        })
        .collect();
    (corrected, corrections)
}

/// The verdicts already reached for one vocabulary and dictionary: a word's correction never changes while they
/// do not (an edit builds a new index, and with it a new memory), and a fuzzy search over a 394k-word list costs
/// a few hundred microseconds, asked several times per message (search, the evidence rule). Bounded: words
/// longer than [`REMEMBERED_CHARS`] are not kept, and the memory starts afresh when [`REMEMBERED_WORDS`] is reached.
#[derive(Default)]
pub(super) struct Remembered {
    verdicts: std::sync::Mutex<HashMap<String, Option<String>>>,
}

const REMEMBERED_WORDS: usize = 50_000;
const REMEMBERED_CHARS: usize = 40;

impl Remembered {
    fn get_or(&self, word: &str, decide: impl FnOnce() -> Option<String>) -> Option<String> {
        let lock = || self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(verdict) = lock().get(word) {
            return verdict.clone();
        }
        // Decided outside the lock: two messages with the same new word may both decide it, never wait on it.
        let verdict = decide();
        if word.chars().count() <= REMEMBERED_CHARS {
            let mut verdicts = lock();
            if verdicts.len() >= REMEMBERED_WORDS {
                verdicts.clear();
            }
            verdicts.insert(word.to_owned(), verdict.clone());
        }
        verdict
    }
}

/// The correction of one word, or `None` when it is a known word or cannot be told apart from one.
fn correction(word: &str, vocabulary: &impl Vocabulary, dictionary: Option<&Dictionary>) -> Option<String> {
    let chars = word.chars().count();
    if chars < MIN_CORRECTABLE_CHARS || !word.chars().all(char::is_alphabetic) {
        return None;
    }
    if vocabulary.frequency(word) > 0 || dictionary.is_some_and(|d| d.lists(word)) {
        return None;
    }
    // A split into two listed words is a guess where a listed word is a fact: "mogenlijk" is "mogen" + "lijk" as
    // well as a typo of "mogelijk". Such a word only yields to a word of the knowledge base one edit away.
    let compound = dictionary.is_some_and(|d| d.is_compound(word));
    let most_edits = if chars >= TWO_EDITS_FROM_CHARS && !compound { 2 } else { 1 };
    // Edit distance first: the automaton of one edit is searched before that of two, and the first distance with
    // any candidate decides, whether the candidate is the knowledge base's word or only the dictionary's.
    (1..=most_edits).find_map(|edits| {
        // The field is irrelevant: the automaton matches the word's text only.
        let term = Term::from_field_text(Field::from_field_id(0), word);
        let automaton = FuzzyTermQuery::new(term, edits, true).automaton().ok()?;
        let known = vocabulary.matching(&automaton).into_iter().map(|(word, frequency)| Rank {
            edits,
            not_in_vocabulary: false,
            rarity: std::cmp::Reverse(frequency),
            word,
        });
        let listed = dictionary.filter(|_| !compound).map(|d| d.matching(&automaton)).unwrap_or_default();
        let listed = listed.into_iter().map(|word| Rank {
            edits,
            not_in_vocabulary: vocabulary.frequency(&word) == 0,
            rarity: std::cmp::Reverse(vocabulary.stem_frequency(&word)),
            word,
        });
        known.chain(listed).min().map(|best| best.word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary from (word, frequency) pairs; stems are the word less a final "en" or "s".
    struct Words(Vec<(&'static str, u64)>);

    impl Vocabulary for Words {
        fn frequency(&self, word: &str) -> u64 {
            self.0.iter().find(|(w, _)| *w == word).map_or(0, |(_, f)| *f)
        }
        fn matching(&self, automaton: &DfaWrapper) -> Vec<(String, u64)> {
            let set = Dictionary::from_words(self.0.iter().map(|(w, _)| *w), false);
            set.matching(automaton).into_iter().map(|w| (w.clone(), self.frequency(&w))).collect()
        }
        fn stem_frequency(&self, word: &str) -> u64 {
            let stem = word.strip_suffix("en").or_else(|| word.strip_suffix('s')).unwrap_or(word);
            self.frequency(stem)
        }
    }

    fn fixed(text: &str, vocabulary: &Words, dictionary: Option<&Dictionary>) -> Vec<(String, String)> {
        correct(text.split(' ').map(str::to_owned).collect(), vocabulary, dictionary, &Remembered::default()).1
    }

    #[test]
    fn a_real_word_is_never_replaced() {
        let vocabulary = Words(vec![("maar", 40), ("mogelijk", 12), ("gevonden", 5)]);
        let dictionary = Dictionary::from_words(["maan", "eigenlijk", "gewonnen", "maar"], true);
        assert_eq!(fixed("de maan eigenlijk gewonnen", &vocabulary, Some(&dictionary)), vec![]);
        // Without a dictionary the vocabulary is all loket knows, and it guesses as it always did.
        let guessed = fixed("de maan", &vocabulary, None);
        assert_eq!(guessed, vec![("maan".to_owned(), "maar".to_owned())]);
    }

    #[test]
    fn a_compound_yields_only_to_a_knowledge_base_word_one_edit_away() {
        let vocabulary = Words(vec![("mogelijk", 12), ("retourlabel", 3)]);
        let dictionary = Dictionary::from_words(["mogen", "lijk", "mogelijk", "retour", "label", "nummer"], true);
        let fixed_mogenlijk = fixed("mogenlijk", &vocabulary, Some(&dictionary));
        assert_eq!(fixed_mogenlijk, vec![("mogenlijk".into(), "mogelijk".into())]);
        assert_eq!(fixed("retournummer", &vocabulary, Some(&dictionary)), vec![], "nothing one edit away");
    }

    #[test]
    fn fewer_edits_win_then_the_knowledge_base_then_frequency() {
        let vocabulary = Words(vec![("pakket", 9), ("pakken", 3), ("bestelling", 20)]);
        let dictionary = Dictionary::from_words(["pakket", "pakken", "pakkat", "bestelling", "besteling"], false);
        // "pakkex": one edit from pakket, pakken and pakkat; the vocabulary's most frequent wins.
        assert_eq!(fixed("pakkex", &vocabulary, Some(&dictionary)), vec![("pakkex".into(), "pakket".into())]);
        // "bestelign" is one edit from the dictionary's "besteling" and two from "bestelling": one edit wins.
        assert_eq!(fixed("bestelign", &vocabulary, Some(&dictionary)), vec![("bestelign".into(), "besteling".into())]);
    }

    #[test]
    fn a_dictionary_word_inflecting_a_vocabulary_word_beats_other_dictionary_words() {
        let vocabulary = Words(vec![("retour", 7)]);
        // Both one edit away and neither in the vocabulary; "retouren" inflects its "retour".
        let dictionary = Dictionary::from_words(["retourea", "retouren"], false);
        assert_eq!(fixed("retourex", &vocabulary, Some(&dictionary)), vec![("retourex".into(), "retouren".into())]);
    }

    #[test]
    fn short_words_digits_and_repeats() {
        let vocabulary = Words(vec![("order", 10)]);
        let dictionary = Dictionary::from_words(["order"], false);
        assert_eq!(fixed("odr 0rder", &vocabulary, Some(&dictionary)), vec![], "short or with digits: left alone");
        let (words, corrections) =
            correct(vec!["odrer".into(), "odrer".into()], &vocabulary, Some(&dictionary), &Remembered::default());
        assert_eq!(words, vec!["order", "order"], "every occurrence is corrected");
        assert_eq!(corrections.len(), 1, "and reported once");
    }
}

/// The speller with the shipped knowledge base and dictionaries, through search.
#[cfg(test)]
mod shipped {
    use std::path::Path;
    use std::sync::OnceLock;

    use crate::knowledge::{FaqIndex, KnowledgeBase};

    fn shipped() -> &'static (KnowledgeBase, FaqIndex) {
        static SHIPPED: OnceLock<(KnowledgeBase, FaqIndex)> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base");
            let kb = KnowledgeBase::load(&dir, &["nl".into(), "en".into()]).expect("the shipped knowledge base loads");
            let index = FaqIndex::build(&kb).expect("it indexes");
            (kb, index)
        })
    }

    fn corrections(text: &str, language: &str) -> Vec<(String, String)> {
        shipped().1.search(text, language, 5).corrections
    }

    /// The id of the best entry for `text`.
    fn best(text: &str, language: &str) -> Option<&'static str> {
        let (kb, index) = shipped();
        index.search(text, language, 5).hits.first().map(|hit| kb.faqs[hit.faq].id.as_str())
    }

    /// Whether an example of the knowledge base has `word`.
    fn uses(word: &str, language: &str) -> bool {
        let (kb, _) = shipped();
        kb.faqs
            .iter()
            .filter_map(|faq| faq.translations.get(language))
            .flat_map(|t| t.examples())
            .any(|example| crate::text::words(example).iter().any(|w| w == word))
    }

    #[test]
    fn the_shipped_languages_have_their_dictionaries() {
        let (kb, _) = shipped();
        for (language, at_least) in [("nl", 300_000), ("en", 70_000)] {
            let dictionary = kb.locale(language).dictionary().expect("a dictionary");
            assert!(dictionary.len() >= at_least, "{language}: {dictionary:?}");
        }
    }

    #[test]
    fn real_words_stay_as_they_are() {
        for (text, language) in [
            ("hoe ver is de maan van de aarde", "nl"),
            ("ik weet eigenlijk niet of ik iets gewonnen heb", "nl"),
            ("ik wil mijn bestellingsnummer en het retourlabelnummer weten", "nl"),
            ("spreken jullie Nederlands in Amsterdam", "nl"),
            ("I have been waiting for my parcel for ages", "en"),
            ("what colour is the moon", "en"),
        ] {
            assert_eq!(corrections(text, language), vec![], "{text}");
        }
    }

    #[test]
    fn typos_are_corrected_to_the_knowledge_bases_words() {
        for (typed, language, meant) in [
            ("waar blijft mijn bestelign", "nl", "waar blijft mijn bestelling"),
            ("hoe kan ik iets retourneern", "nl", "hoe kan ik iets retourneren"),
            ("my deliverry is late", "en", "my delivery is late"),
            ("how do i get a refnud", "en", "how do i get a refund"),
        ] {
            let fixed = corrections(typed, language);
            assert_eq!(fixed.len(), 1, "{typed}: {fixed:?}");
            // The knowledge base's word, even where that is its own typo (an example reads "bestellign").
            assert!(uses(&fixed[0].1, language), "{typed}: {fixed:?}");
            assert_eq!(best(typed, language), best(meant, language), "{typed}");
        }
    }

    #[test]
    fn odd_input_is_searched_without_panicking() {
        let giant = "bestelling".repeat(500);
        let mixed = "waar is mijn заказ 注文 🙂 bestellingg";
        for text in ["", "🙂🙂🙂", "1234567890 0031612345678", giant.as_str(), mixed, "ééééé ßßßß ﬁﬁﬁﬁ"]
        {
            for language in ["nl", "en", "xx"] {
                let _ = shipped().1.search(text, language, 5);
            }
        }
    }

    #[test]
    fn a_verdict_is_decided_once_and_giant_words_are_not_kept() {
        let memory = crate::knowledge::speller::Remembered::default();
        let mut asked = 0;
        for _ in 0..3 {
            let verdict = memory.get_or("odrer", || {
                asked += 1;
                Some("order".into())
            });
            assert_eq!(verdict.as_deref(), Some("order"));
        }
        assert_eq!(asked, 1, "the fuzzy search runs once per word");
        let giant = "a".repeat(crate::knowledge::speller::REMEMBERED_CHARS + 1);
        memory.get_or(&giant, || None);
        assert!(!memory.verdicts.lock().unwrap().contains_key(&giant));
    }
}
