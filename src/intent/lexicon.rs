//! Pretrained lexical knowledge: static sub-word and whole-word vectors distilled from multilingual-e5-small (models/lexicon/,
//! made by its build.py) turn a message into one dense vector, so words the training data never had still land
//! near their synonyms. The files are compiled into the binary; nothing is read or downloaded at run time.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::IntentError;

const VOCAB_JSON: &str = include_str!("../../models/lexicon/vocab.json");
const VECTORS: &[u8] = include_bytes!("../../models/lexicon/vectors.safetensors");

/// The SentencePiece word-boundary mark that starts a word's first piece.
const BOUNDARY: char = '\u{2581}';

#[derive(serde::Deserialize)]
struct VocabFile {
    dims: usize,
    unk_logprob: f32,
    pieces: Vec<(String, f32)>,
    /// Dictionary words that split into several pieces, each with a vector of its own (rows after the pieces'):
    /// a word as a whole can mean more than the mean of its fragments.
    #[serde(default)]
    words: Vec<String>,
}

/// Piece vocabulary with log-probabilities, whole words, and one SIF-weighted vector per row.
pub(crate) struct Lexicon {
    pieces: HashMap<String, (u32, f32)>,
    words: HashMap<String, u32>,
    unk_logprob: f32,
    max_piece_chars: usize,
    dims: usize,
    /// Row-major int8 vectors, each row times its own scale (int8 halves the shipped size at < 1% error).
    vectors: Vec<i8>,
    scales: Vec<f32>,
    digest: String,
}

impl Lexicon {
    /// The lexicon built into this binary, parsed once.
    pub fn shipped() -> Result<&'static Lexicon, IntentError> {
        static SHIPPED: OnceLock<Result<Lexicon, String>> = OnceLock::new();
        SHIPPED
            .get_or_init(|| Self::parse(VOCAB_JSON, VECTORS).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| IntentError::Corrupt(format!("built-in lexicon: {e}")))
    }

    fn parse(vocab_json: &str, raw_vectors: &[u8]) -> Result<Self, IntentError> {
        let vocab: VocabFile = serde_json::from_str(vocab_json)?;
        let st = safetensors::SafeTensors::deserialize(raw_vectors).map_err(|e| IntentError::Corrupt(e.to_string()))?;
        let corrupt = |e: safetensors::SafeTensorError| IntentError::Corrupt(e.to_string());
        let (view, scales) = (st.tensor("vectors").map_err(corrupt)?, st.tensor("scales").map_err(corrupt)?);
        let rows = vocab.pieces.len() + vocab.words.len();
        if view.dtype() != safetensors::Dtype::I8
            || view.shape() != [rows, vocab.dims]
            || scales.dtype() != safetensors::Dtype::F16
            || scales.shape() != [rows]
            || vocab.dims == 0
        {
            return Err(IntentError::Corrupt("lexicon vectors do not match its vocabulary".into()));
        }
        let vectors = view.data().iter().map(|&b| b as i8).collect();
        let scales = scales.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        let max_piece_chars = vocab.pieces.iter().map(|(p, _)| p.chars().count()).max().unwrap_or(1);
        let first_word = vocab.pieces.len();
        let pieces = vocab.pieces.into_iter().enumerate().map(|(i, (p, lp))| (p, (i as u32, lp))).collect();
        let words = vocab.words.into_iter().enumerate().map(|(i, w)| (w, (first_word + i) as u32)).collect();
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(vocab_json.as_bytes());
        hasher.update(raw_vectors);
        let digest = crate::text::hex(&hasher.finalize());
        Ok(Self {
            pieces,
            words,
            unk_logprob: vocab.unk_logprob,
            max_piece_chars,
            dims: vocab.dims,
            vectors,
            scales,
            digest,
        })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// SHA-256 over the vocabulary and the vectors: a saved model names the lexicon it was trained with.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Pieces of `word` (lower-case) by the unigram model's best segmentation, as SentencePiece does it;
    /// a character no piece covers is skipped.
    fn segment(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<char> = std::iter::once(BOUNDARY).chain(word.chars()).collect();
        let n = chars.len();
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back = vec![(0usize, None::<u32>); n + 1];
        best[0] = 0.0;
        let mut buf = String::with_capacity(4 * self.max_piece_chars);
        for end in 1..=n {
            for start in end.saturating_sub(self.max_piece_chars)..end {
                if best[start] == f32::NEG_INFINITY {
                    continue;
                }
                buf.clear();
                buf.extend(&chars[start..end]);
                let (id, logprob) = match self.pieces.get(buf.as_str()) {
                    Some(&(id, lp)) => (Some(id), lp),
                    None if end - start == 1 => (None, self.unk_logprob),
                    None => continue,
                };
                if best[start] + logprob > best[end] {
                    best[end] = best[start] + logprob;
                    back[end] = (start, id);
                }
            }
        }
        let start_len = out.len();
        let mut end = n;
        while end > 0 {
            let (start, id) = back[end];
            out.extend(id);
            end = start;
        }
        out[start_len..].reverse();
    }

    /// The message's vector: mean of its words' (already SIF-weighted) vectors, scaled to length `scale`; a word
    /// without a row of its own counts as its pieces; all zeros when no word has a piece.
    pub fn embed(&self, words: &[String], scale: f32) -> Vec<f32> {
        let mut ids = Vec::with_capacity(4 * words.len());
        for w in words {
            match self.words.get(w.as_str()) {
                Some(&id) => ids.push(id),
                None => self.segment(w, &mut ids),
            }
        }
        let mut out = vec![0.0f32; self.dims];
        for &id in &ids {
            let start = id as usize * self.dims;
            if let (Some(row), Some(&k)) = (self.vectors.get(start..start + self.dims), self.scales.get(id as usize)) {
                out.iter_mut().zip(row).for_each(|(o, &v)| *o += k * f32::from(v));
            }
        }
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            out.iter_mut().for_each(|x| *x *= scale / norm);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Lexicon;

    fn vector(text: &str) -> Vec<f32> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        Lexicon::shipped().unwrap().embed(&words, 1.0)
    }

    fn cosine(a: &str, b: &str) -> f32 {
        vector(a).iter().zip(vector(b)).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_built_in_lexicon_loads_and_segments_any_word() {
        let lex = Lexicon::shipped().unwrap();
        assert_eq!(lex.dims(), 256);
        assert_eq!(lex.digest().len(), 64);
        let mut ids = Vec::new();
        lex.segment("verzendkosten", &mut ids);
        assert!(!ids.is_empty() && ids.len() <= 4, "{ids:?}");
        let v = vector("verzendkosten");
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        // No words: the zero vector; characters no piece covers are skipped, never NaN.
        assert!(vector("").iter().all(|&x| x == 0.0));
        assert!(vector("🙂🙂 ∑").iter().all(|x| x.is_finite()));
    }

    #[test]
    fn words_never_seen_together_land_near_their_synonyms() {
        // Words that are one piece each carry the encoder's meaning; a word split into fragments without a row of
        // its own is the mean of its fragments, which still lands near its synonyms when the fragments carry it.
        assert!(cosine("parcel", "package") > cosine("parcel", "password") + 0.2);
        assert!(cosine("delivery", "shipping") > cosine("delivery", "password") + 0.2);
        assert!(cosine("refund", "money back") > cosine("refund", "password") + 0.1);
        assert!(cosine("bestelling", "order") > cosine("bestelling", "zwemmen") + 0.2);
        assert!(cosine("retourneren", "terugsturen") > cosine("retourneren", "zwemmen") + 0.2);
    }
}
