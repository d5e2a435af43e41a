//! Text → sparse feature bag: trained WordPiece sub-words plus hashed word uni/bi-grams and character n-grams.
//!
//! One flat id space feeds one embedding table: ids `[0, n_tok)` are WordPiece vocabulary entries, then come
//! hash buckets for word unigrams (1/4), word bigrams (1/4) and character n-grams (1/2). Each of these four
//! groups is pooled separately (see `GROUPS`), so that ~150 character n-grams cannot drown the ~8 words of a
//! message. The same function produces features for training and for inference, so the two never drift apart.

use super::IntentError;
use tokenizers::Tokenizer;

/// Hash namespaces, so that the word "the" and the character trigram "the" land in different buckets.
const NS_WORD: u8 = 1;
const NS_BIGRAM: u8 = 2;
const NS_CHAR: u8 = 3;

/// Feature groups, each mean-pooled on its own: sub-words, words, word bigrams, character n-grams.
pub(crate) const GROUPS: usize = 4;

/// Feature extractor: the trained tokenizer plus the hashing layout.
pub(crate) struct Featurizer {
    tokenizer: Tokenizer,
    /// Inverse document frequency per row (0 for rows no training text uses): rare, telling features weigh
    /// more in the mean than "what"/"is", and rows that were never trained contribute nothing.
    idf: Vec<f32>,
    n_tok: u32,
    buckets: u32,
    char_min: usize,
    char_max: usize,
    max_chars: usize,
}

/// Settings that fix the id space; stored in config.json so `load` rebuilds the exact same featurizer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct FeatureLayout {
    pub n_tok: u32,
    pub buckets: u32,
    pub char_min: usize,
    pub char_max: usize,
    pub max_chars: usize,
}

/// FNV-1a, 64 bit: stable across Rust versions and platforms, unlike `std`'s hasher, so saved models keep
/// meaning the same thing forever.
fn fnv1a(ns: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(ns);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            eat(0xff); // separator byte that never occurs in UTF-8, so ("ab","c") != ("a","bc")
        }
        p.bytes().for_each(&mut eat);
    }
    h
}

/// Cuts `text` to at most `max_chars` characters on a char boundary: bounds latency for hostile 50 KB inputs
/// while real support messages are far shorter.
fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((idx, _)) => &text[..idx],
        None => text,
    }
}

/// Lower-cased alphanumeric words; everything else separates words. Works for any script.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            cur.extend(ch.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Featurizer {
    /// Trains a WordPiece vocabulary on the training texts (never on validation or test).
    pub fn train(texts: &[&str], vocab_size: usize, buckets: u32, max_chars: usize) -> Result<Self, IntentError> {
        let owned: Vec<&str> = texts.iter().map(|t| truncate_chars(t, max_chars)).collect();
        let json = super::wordpiece::train_tokenizer_json(&owned, vocab_size)?;
        let layout = FeatureLayout { n_tok: 0, buckets, char_min: 3, char_max: 5, max_chars };
        Self::from_json(&json, &layout, true)
    }

    /// Rebuilds from a saved tokenizer.json; `fresh` skips the vocabulary-size check during training.
    pub fn from_json(json: &str, layout: &FeatureLayout, fresh: bool) -> Result<Self, IntentError> {
        let tokenizer: Tokenizer =
            json.parse().map_err(|e: tokenizers::Error| IntentError::Tokenizer(e.to_string()))?;
        let n_tok = tokenizer.get_vocab_size(true) as u32;
        if !fresh && n_tok != layout.n_tok {
            return Err(IntentError::Corrupt(format!("tokenizer has {n_tok} tokens, config says {}", layout.n_tok)));
        }
        if layout.buckets == 0 || layout.char_min == 0 || layout.char_min > layout.char_max {
            return Err(IntentError::Corrupt("invalid feature layout".into()));
        }
        let rows = n_tok as usize + layout.buckets as usize;
        Ok(Self {
            tokenizer,
            idf: vec![1.0; rows],
            n_tok,
            buckets: layout.buckets,
            char_min: layout.char_min,
            char_max: layout.char_max,
            max_chars: layout.max_chars.max(1),
        })
    }

    pub fn layout(&self) -> FeatureLayout {
        FeatureLayout {
            n_tok: self.n_tok,
            buckets: self.buckets,
            char_min: self.char_min,
            char_max: self.char_max,
            max_chars: self.max_chars,
        }
    }

    pub fn tokenizer_json(&self) -> Result<String, IntentError> {
        self.tokenizer.to_string(false).map_err(|e| IntentError::Tokenizer(e.to_string()))
    }

    /// Rows of the embedding table this featurizer addresses.
    pub fn n_rows(&self) -> usize {
        self.n_tok as usize + self.buckets as usize
    }

    /// Bucket ranges per hashed group: (start, size). Partitioning also stops words colliding with n-grams.
    fn range(&self, group: usize) -> (u32, u32) {
        let q = (self.buckets / 4).max(1);
        match group {
            1 => (self.n_tok, q),
            2 => (self.n_tok + q, q),
            _ => (self.n_tok + 2 * q, self.buckets.saturating_sub(2 * q).max(1)),
        }
    }

    fn bucket(&self, group: usize, h: u64) -> u32 {
        let (start, size) = self.range(group);
        start + (h % size as u64) as u32
    }

    /// Group of a feature id; ids past the table fall in the last group and are skipped at lookup.
    pub fn group_of(&self, id: u32) -> usize {
        if id < self.n_tok {
            0
        } else if id < self.range(2).0 {
            1
        } else if id < self.range(3).0 {
            2
        } else {
            3
        }
    }

    /// Raw feature ids with repetitions (a word seen twice counts twice, as in a bag).
    pub fn feature_ids(&self, text: &str) -> Vec<u32> {
        let text = truncate_chars(text, self.max_chars);
        let mut ids = Vec::with_capacity(16 + text.len() * 4);
        // A tokenizer error (should not happen after truncation) only loses the sub-word view.
        if let Ok(enc) = self.tokenizer.encode(text, false) {
            ids.extend(enc.get_ids().iter().copied().filter(|&i| i < self.n_tok));
        }
        let ws = words(text);
        for w in &ws {
            ids.push(self.bucket(1, fnv1a(NS_WORD, &[w])));
        }
        for pair in ws.windows(2) {
            ids.push(self.bucket(2, fnv1a(NS_BIGRAM, &[&pair[0], &pair[1]])));
        }
        // Character n-grams over "<word>" capture morphology, typos and compounds (Dutch!) that a closed
        // vocabulary misses.
        let mut chars: Vec<char> = Vec::with_capacity(32);
        let mut buf = String::with_capacity(32);
        for w in &ws {
            chars.clear();
            chars.push('<');
            chars.extend(w.chars());
            chars.push('>');
            for n in self.char_min..=self.char_max {
                if chars.len() < n {
                    break;
                }
                for win in chars.windows(n) {
                    buf.clear();
                    buf.extend(win.iter());
                    ids.push(self.bucket(3, fnv1a(NS_CHAR, &[&buf])));
                }
            }
        }
        ids
    }

    /// Sets IDF weights from the training bags (smoothed as in scikit-learn's TfidfVectorizer).
    pub fn fit_idf(&mut self, bags: &[&Vec<u32>]) {
        let mut df = vec![0u32; self.n_rows()];
        let mut seen: Vec<u32> = Vec::new();
        for bag in bags {
            seen.clear();
            seen.extend(bag.iter().copied());
            seen.sort_unstable();
            seen.dedup();
            for &id in &seen {
                if let Some(d) = df.get_mut(id as usize) {
                    *d += 1;
                }
            }
        }
        let n = bags.len() as f32;
        // Rounded to f16 here because that is what gets saved: trained and loaded models must agree exactly.
        let idf = |d: u32| {
            if d == 0 { 0.0 } else { ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0 }
        };
        self.idf = df.iter().map(|&d| half::f16::from_f32(idf(d)).to_f32()).collect();
    }

    pub fn idf(&self) -> &[f32] {
        &self.idf
    }

    /// Installs stored IDF weights; the length must match the table.
    pub fn set_idf(&mut self, idf: Vec<f32>) -> Result<(), IntentError> {
        if idf.len() != self.n_rows() || idf.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(IntentError::Corrupt("idf vector does not match the feature table".into()));
        }
        self.idf = idf;
        Ok(())
    }

    pub fn weight_of(&self, id: u32) -> f32 {
        self.idf.get(id as usize).copied().unwrap_or(0.0)
    }

    /// The words `feature_ids` sees: lower-cased, of the first `max_chars` characters.
    pub fn words_of(&self, text: &str) -> Vec<String> {
        words(truncate_chars(text, self.max_chars))
    }

    /// Pooling entries for `text`: see `bag_weights`.
    pub fn features(&self, text: &str) -> Vec<Feat> {
        bag_weights(self.feature_ids(text), self)
    }
}

/// One pooling entry: embedding row, group slot, and weight (1/n of its group, so each group is a mean).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Feat {
    pub id: u32,
    pub group: u8,
    pub weight: f32,
}

/// Sorts and merges duplicate ids; an occurrence weighs idf / (idf sum of its group), so each group is an
/// IDF-weighted mean. A group whose features were all unseen in training stays empty (zero vector).
pub(crate) fn bag_weights(mut ids: Vec<u32>, fz: &Featurizer) -> Vec<Feat> {
    let mut per_group = [0.0f32; GROUPS];
    for &id in &ids {
        per_group[fz.group_of(id)] += fz.weight_of(id);
    }
    ids.sort_unstable();
    let mut out: Vec<Feat> = Vec::with_capacity(ids.len());
    for id in ids {
        let group = fz.group_of(id);
        let (w, total) = (fz.weight_of(id), per_group[group]);
        if w <= 0.0 || total <= 0.0 {
            continue;
        }
        let w = w / total;
        match out.last_mut() {
            Some(last) if last.id == id => last.weight += w,
            _ => out.push(Feat { id, group: group as u8, weight: w }),
        }
    }
    out
}
