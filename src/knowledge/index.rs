//! The tantivy search index over FAQ examples (canonical questions and phrasings), one stemmed field per language,
//! with typo correction (`speller`, with each language's dictionary) and language detection from the indexed
//! vocabulary.
//!
//! Scores: tantivy's BM25 picks the candidates; each candidate example is then scored by the IDF-weighted overlap
//! of its terms with the message's: `sqrt(covered share of the message * covered share of the example)`, in
//! [0, 1]. Unlike raw BM25 this means the same thing for every query length and index size, so the policy can
//! put a threshold on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::indexer::NoMergePolicy;
use tantivy::query::{BooleanQuery, DfaWrapper, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term};

use super::speller::{self, Vocabulary};
use super::{Dictionary, KnowledgeBase};

/// How many BM25 candidates are rescored per query.
const CANDIDATES: usize = 100;
/// Known words a message needs in another language before a conversation switches to it.
const SWITCH_MIN_WORDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("language {0} has no stemmer")]
    NoStemmer(String),
}

/// One FAQ that matched, with its best example's score.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Position of the entry in [`KnowledgeBase::faqs`].
    pub faq: usize,
    pub score: f32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    /// Best first, one per FAQ entry.
    pub hits: Vec<SearchHit>,
    /// Words no dictionary knows, replaced by a known word one or two edits away: (typed, used).
    pub corrections: Vec<(String, String)>,
    /// Of the message's longer words (those typo correction looks at), how many the knowledge base's vocabulary
    /// does not know. A typo counts as known when its correction is a word search uses; one corrected into a
    /// stop word ("maan" -> "maar") carries no topic, so it stays unknown.
    pub unknown_words: usize,
    /// How many longer words the message has.
    pub long_words: usize,
}

struct LanguageFields {
    /// Stemmed, stop words removed: what is searched.
    text: Field,
    /// Folded surface words: the vocabulary for typo correction and language detection.
    words: Field,
    stemmed: TextAnalyzer,
    surface: TextAnalyzer,
    /// Number of examples in this language (the N of the IDF).
    examples: u64,
    /// Every stemmed term of the examples -> its id; ids follow the terms' byte order.
    terms: HashMap<String, u32>,
    /// Per term id: its IDF.
    idfs: Vec<f32>,
    /// The language's word list: what the speller must leave alone. Shared by every rebuilt index.
    dictionary: Option<Arc<Dictionary>>,
    /// The speller's verdicts on this vocabulary and dictionary.
    remembered: speller::Remembered,
}

struct Example {
    faq: usize,
    /// Ids of the distinct stemmed terms, ascending (so in the terms' byte order).
    terms: Box<[u32]>,
    /// Sum of the terms' IDF.
    weight: f32,
}

pub struct FaqIndex {
    reader: IndexReader,
    languages: BTreeMap<String, LanguageFields>,
    examples: Vec<Example>,
    /// Per segment of the (never reloaded) reader, per document: its position in `examples`. Read once from the
    /// fast field: opening the column decodes its block index, far too slow to do per candidate.
    example_of_doc: Vec<Vec<u32>>,
}

/// The stemming analyzer of a language (with its stop words), or with `None` the surface analyzer: lowercased,
/// accents folded, nothing removed but words of 40 bytes or more.
pub(super) fn analyzer(language: Option<(tantivy::tokenizer::Language, &[String])>) -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .dynamic();
    match language {
        None => builder.build(),
        Some((language, extra_stop_words)) => {
            let builder = match StopWordFilter::new(language) {
                Some(stop_words) => builder.filter_dynamic(stop_words),
                None => builder,
            };
            // The locale's own list complements the Snowball/Lucene one (Lucene's English list lacks pronouns).
            let extra = extra_stop_words.iter().map(|w| crate::text::normalize(w));
            builder.filter_dynamic(StopWordFilter::remove(extra)).filter_dynamic(Stemmer::new(language)).build()
        }
    }
}

pub(super) fn tokens(analyzer: &TextAnalyzer, text: &str) -> Vec<String> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

fn idf(doc_freq: u64, docs: u64) -> f32 {
    // BM25's IDF, as tantivy computes it; a term never seen gets the highest weight.
    let (df, n) = (doc_freq as f32, docs as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl FaqIndex {
    /// Indexes every example of every entry of `kb`, per language.
    pub fn build(kb: &KnowledgeBase) -> Result<FaqIndex, IndexError> {
        let mut schema = Schema::builder();
        let example_field = "example";
        let example = schema.add_u64_field(example_field, FAST);
        let mut fields = BTreeMap::new();
        for (code, locale) in &kb.locales {
            let language = locale.stemmer_language().ok_or_else(|| IndexError::NoStemmer(code.clone()))?;
            let options = |tokenizer: &str| {
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(tokenizer)
                        .set_index_option(IndexRecordOption::WithFreqs),
                )
            };
            let text = schema.add_text_field(&format!("text_{code}"), options(&format!("stemmed_{code}")));
            let words = schema.add_text_field(&format!("words_{code}"), options("surface"));
            let fields_of_language = LanguageFields {
                text,
                words,
                stemmed: analyzer(Some((language, &locale.stop_words))),
                surface: analyzer(None),
                examples: 0,
                terms: HashMap::new(),
                idfs: Vec::new(),
                dictionary: locale.dictionary_shared(),
                remembered: speller::Remembered::default(),
            };
            fields.insert(code.clone(), fields_of_language);
        }
        let index = Index::create_in_ram(schema.build());
        for (code, f) in &fields {
            index.tokenizers().register(&format!("stemmed_{code}"), f.stemmed.clone());
        }
        index.tokenizers().register("surface", analyzer(None));

        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 50_000_000)?;
        // One segment in the end (merged below): top-k search keeps one threshold instead of restarting per segment.
        writer.set_merge_policy(Box::new(NoMergePolicy));
        let mut examples = Vec::new();
        for (position, faq) in kb.faqs.iter().enumerate() {
            for (code, translation) in &faq.translations {
                let Some(f) = fields.get_mut(code) else { continue };
                for text in translation.examples() {
                    let mut doc = TantivyDocument::default();
                    doc.add_u64(example, examples.len() as u64);
                    doc.add_text(f.text, text);
                    doc.add_text(f.words, text);
                    writer.add_document(doc)?;
                    let mut terms = tokens(&f.stemmed, text);
                    terms.sort();
                    terms.dedup();
                    examples.push((code.clone(), position, terms));
                    f.examples += 1;
                }
            }
        }
        writer.commit()?;
        let segments = index.searchable_segment_ids()?;
        if segments.len() > 1 {
            writer.merge(&segments).wait()?;
        }
        writer.wait_merging_threads()?;
        let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut example_of_doc = Vec::new();
        for segment in reader.searcher().segment_readers() {
            let column = segment.fast_fields().u64(example_field)?;
            example_of_doc
                .push((0..segment.max_doc()).map(|doc| column.first(doc).unwrap_or(u64::MAX) as u32).collect());
        }
        let mut built = FaqIndex { reader, languages: fields, examples: Vec::new(), example_of_doc };

        // Term ids and IDFs need the finished index.
        let searcher = built.reader.searcher();
        let mut vocabulary: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (code, _, terms) in &examples {
            vocabulary.entry(code.as_str()).or_default().extend(terms.iter().map(String::as_str));
        }
        for (code, terms) in vocabulary {
            let f = built.languages.get_mut(code).expect("a language of the index");
            let idfs = terms.iter().map(|t| {
                let doc_freq = searcher.doc_freq(&Term::from_field_text(f.text, t)).unwrap_or(0);
                idf(doc_freq, f.examples)
            });
            f.idfs = idfs.collect();
            f.terms = terms.into_iter().enumerate().map(|(id, t)| (t.to_owned(), id as u32)).collect();
        }
        for (code, faq, terms) in examples {
            let f = &built.languages[&code];
            let terms: Box<[u32]> = terms.iter().map(|t| f.terms[t.as_str()]).collect();
            let weight = terms.iter().map(|&t| f.idfs[t as usize]).sum();
            built.examples.push(Example { faq, terms, weight });
        }
        Ok(built)
    }

    /// The language whose vocabulary knows most of the message's words, when one clearly does.
    pub fn detect_language(&self, text: &str) -> Option<String> {
        let mut best: Option<(usize, &String)> = None;
        let mut tie = false;
        for (code, known) in self.known_words(text) {
            match best {
                Some((count, _)) if known == count => tie = true,
                Some((count, _)) if known < count => {}
                _ => {
                    best = Some((known, code));
                    tie = false;
                }
            }
        }
        match best {
            Some((known, code)) if known > 0 && !tie => Some(code.clone()),
            _ => None,
        }
    }

    /// Another language than `current` when the message is clearly written in it: its vocabulary knows at least
    /// [`SWITCH_MIN_WORDS`] of the words and more than twice as many as `current`'s. A word or two ("ok", "4",
    /// a product name) never switches a conversation.
    pub fn clearly_other_language(&self, text: &str, current: &str) -> Option<String> {
        let counts = self.known_words(text);
        let here = counts.iter().find(|(code, _)| code.as_str() == current).map_or(0, |c| c.1);
        let (code, known) = counts.into_iter().filter(|(code, _)| code.as_str() != current).max_by_key(|c| c.1)?;
        (known >= SWITCH_MIN_WORDS && known > 2 * here).then(|| code.clone())
    }

    /// Per language, how many of the message's words its vocabulary knows.
    fn known_words(&self, text: &str) -> Vec<(&String, usize)> {
        let searcher = self.reader.searcher();
        self.languages
            .iter()
            .map(|(code, f)| {
                let known = tokens(&f.surface, text)
                    .iter()
                    .filter(|w| searcher.doc_freq(&Term::from_field_text(f.words, w)).unwrap_or(0) > 0)
                    .count();
                (code, known)
            })
            .collect()
    }

    /// Searches `text` in `language`; hits are best first, at most `limit`.
    pub fn search(&self, text: &str, language: &str, limit: usize) -> SearchResult {
        let Some(f) = self.languages.get(language) else { return SearchResult::default() };
        let searcher = self.reader.searcher();
        let vocabulary = IndexedWords { searcher: &searcher, fields: f };
        let typed = tokens(&f.surface, text);
        let (corrected, corrections) =
            speller::correct(typed.clone(), &vocabulary, f.dictionary.as_deref(), &f.remembered);
        // The speller keeps word positions, so each typed word stands beside what search used for it.
        let topical = |word: &str| tokens(&f.stemmed, word).iter().any(|t| f.terms.contains_key(t.as_str()));
        let long: Vec<(&String, &String)> = typed
            .iter()
            .zip(&corrected)
            .filter(|(w, _)| w.chars().count() >= speller::MIN_CORRECTABLE_CHARS && w.chars().all(char::is_alphabetic))
            .collect();
        let unknown_words = long
            .iter()
            .filter(|(typed, used)| vocabulary.frequency(typed) == 0 && !(typed != used && topical(used)))
            .count();
        let mut result = SearchResult { hits: Vec::new(), corrections, unknown_words, long_words: long.len() };
        let mut terms = tokens(&f.stemmed, &corrected.join(" "));
        terms.sort();
        terms.dedup();
        if terms.is_empty() {
            return result;
        }
        // Known terms as (id, IDF), ascending; a term no example has only adds to the message's weight.
        let mut known: Vec<(u32, f32)> = Vec::with_capacity(terms.len());
        let mut query_weight = 0.0;
        for term in &terms {
            match f.terms.get(term.as_str()) {
                Some(&id) => {
                    known.push((id, f.idfs[id as usize]));
                    query_weight += f.idfs[id as usize];
                }
                None => query_weight += idf(0, f.examples),
            }
        }
        if known.is_empty() {
            return result;
        }
        known.sort_unstable_by_key(|&(id, _)| id);
        let query = BooleanQuery::new(
            terms
                .iter()
                .filter(|t| f.terms.contains_key(t.as_str()))
                .map(|t| {
                    let term = TermQuery::new(Term::from_field_text(f.text, t), IndexRecordOption::WithFreqs);
                    (Occur::Should, Box::new(term) as Box<dyn Query>)
                })
                .collect(),
        );
        let Ok(candidates) = searcher.search(&query, &TopDocs::with_limit(CANDIDATES).order_by_score()) else {
            return result;
        };
        let mut best: HashMap<usize, f32> = HashMap::new();
        for (_, address) in candidates {
            let Some(&id) = self
                .example_of_doc
                .get(address.segment_ord as usize)
                .and_then(|docs| docs.get(address.doc_id as usize))
            else {
                continue;
            };
            let Some(example) = self.examples.get(id as usize) else { continue };
            let shared = shared_weight(&example.terms, &known);
            let score = ((shared / query_weight) * (shared / example.weight.max(f32::EPSILON))).sqrt().min(1.0);
            let entry = best.entry(example.faq).or_default();
            *entry = entry.max(score);
        }
        let mut hits: Vec<SearchHit> = best.into_iter().map(|(faq, score)| SearchHit { faq, score }).collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.faq.cmp(&b.faq)));
        hits.truncate(limit);
        result.hits = hits;
        result
    }

    /// Number of indexed examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// One language's indexed surface words, as the speller sees them.
struct IndexedWords<'a> {
    searcher: &'a Searcher,
    fields: &'a LanguageFields,
}

impl Vocabulary for IndexedWords<'_> {
    fn frequency(&self, word: &str) -> u64 {
        self.searcher.doc_freq(&Term::from_field_text(self.fields.words, word)).unwrap_or(0)
    }

    fn matching(&self, automaton: &DfaWrapper) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        for segment in self.searcher.segment_readers() {
            let Ok(inverted) = segment.inverted_index(self.fields.words) else { continue };
            let Ok(mut stream) = inverted.terms().search(automaton).into_stream() else { continue };
            while stream.advance() {
                if let Ok(word) = std::str::from_utf8(stream.key()) {
                    found.push((word.to_owned(), u64::from(stream.value().doc_freq)));
                }
            }
        }
        found
    }

    fn stem_frequency(&self, word: &str) -> u64 {
        // A stop word has no stem in the index: it adds nothing to search.
        let Some(stem) = tokens(&self.fields.stemmed, word).into_iter().next() else { return 0 };
        self.searcher.doc_freq(&Term::from_field_text(self.fields.text, &stem)).unwrap_or(0)
    }
}

/// The summed IDF of the query terms (`query`: (id, IDF), ascending ids) that `terms` (ascending) contains, added
/// in the example's term order.
fn shared_weight(terms: &[u32], query: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < terms.len() && j < query.len() {
        match terms[i].cmp(&query[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += query[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}
