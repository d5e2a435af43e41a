//! Deterministic WordPiece vocabulary learning (BPE-style merges) feeding a `tokenizers` WordPiece tokenizer.
//!
//! Why not `WordPieceTrainer`: in tokenizers 0.23 its result depends on `AHashMap` iteration order (random per
//! process), so two runs with the same data give different vocabularies and ids, which breaks "same seed →
//! same bytes". Here words come from the very same `tokenizers` normalizer and pre-tokenizer, merges are
//! counted exactly and ties are broken by the merged string, so the vocabulary is a pure function of the data.
//! Encoding, normalisation and serialisation (tokenizer.json) are all done by the `tokenizers` crate.

use super::IntentError;
use std::collections::{BTreeMap, HashMap};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, TokenizerBuilder};

const UNK: &str = "[UNK]";
const PREFIX: &str = "##";

/// Lower-casing and accent stripping make "Één" and "een" share sub-words, which helps Dutch.
fn normalizer() -> BertNormalizer {
    BertNormalizer::new(true, true, Some(true), true)
}

fn tok_err(e: impl std::fmt::Display) -> IntentError {
    IntentError::Tokenizer(e.to_string())
}

/// Word counts exactly as the tokenizer will see them at encode time.
fn word_counts(texts: &[&str]) -> Result<BTreeMap<String, u64>, IntentError> {
    let norm = normalizer();
    let mut counts = BTreeMap::new();
    for t in texts {
        let mut pts = PreTokenizedString::from(*t);
        pts.normalize(|n| norm.normalize(n)).map_err(tok_err)?;
        BertPreTokenizer.pre_tokenize(&mut pts).map_err(tok_err)?;
        for (w, _, _) in pts.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Learns up to `vocab_size` pieces: all characters (word-initial and "##"-continuation) plus the most frequent
/// merges with count >= `min_freq`.
fn learn_vocab(counts: &BTreeMap<String, u64>, vocab_size: usize, min_freq: u64) -> Vec<String> {
    let mut pieces: Vec<String> = vec![UNK.to_string()];
    let mut id_of: HashMap<String, u32> = HashMap::new();
    fn intern(s: String, pieces: &mut Vec<String>, id_of: &mut HashMap<String, u32>) -> u32 {
        *id_of.entry(s.clone()).or_insert_with(|| {
            pieces.push(s);
            (pieces.len() - 1) as u32
        })
    }
    // Alphabet first, in sorted order (BTreeMap iteration), so ids never depend on hashing.
    let mut alphabet: Vec<String> = counts
        .keys()
        .flat_map(|w| w.chars().enumerate().map(|(i, c)| if i == 0 { c.to_string() } else { format!("{PREFIX}{c}") }))
        .collect();
    alphabet.sort();
    alphabet.dedup();
    for a in alphabet {
        intern(a, &mut pieces, &mut id_of);
    }
    let mut words: Vec<(Vec<u32>, u64)> = counts
        .iter()
        .map(|(w, &c)| {
            let syms = w
                .chars()
                .enumerate()
                .map(|(i, ch)| id_of[&if i == 0 { ch.to_string() } else { format!("{PREFIX}{ch}") }])
                .collect();
            (syms, c)
        })
        .collect();
    let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
    for (syms, c) in &words {
        for p in syms.windows(2) {
            *pairs.entry((p[0], p[1])).or_insert(0) += c;
        }
    }
    let merged_name = |pieces: &[String], (a, b): (u32, u32)| {
        format!("{}{}", pieces[a as usize], pieces[b as usize].strip_prefix(PREFIX).unwrap_or(&pieces[b as usize]))
    };
    while pieces.len() < vocab_size {
        // Highest count wins; ties go to the smaller merged string, then smaller ids: a total order.
        let best = pairs.iter().filter(|(_, c)| **c >= min_freq).max_by(|(pa, ca), (pb, cb)| {
            ca.cmp(cb)
                .then_with(|| merged_name(&pieces, **pb).cmp(&merged_name(&pieces, **pa)))
                .then_with(|| pb.cmp(pa))
        });
        let Some((&(a, b), _)) = best else { break };
        let new_id = intern(merged_name(&pieces, (a, b)), &mut pieces, &mut id_of);
        for (syms, c) in words.iter_mut() {
            if !syms.windows(2).any(|p| p[0] == a && p[1] == b) {
                continue;
            }
            for p in syms.windows(2) {
                let e = pairs.entry((p[0], p[1])).or_insert(0);
                *e = e.saturating_sub(*c);
            }
            let mut out = Vec::with_capacity(syms.len());
            let mut i = 0;
            while i < syms.len() {
                if i + 1 < syms.len() && syms[i] == a && syms[i + 1] == b {
                    out.push(new_id);
                    i += 2;
                } else {
                    out.push(syms[i]);
                    i += 1;
                }
            }
            for p in out.windows(2) {
                *pairs.entry((p[0], p[1])).or_insert(0) += *c;
            }
            *syms = out;
        }
        pairs.retain(|_, c| *c > 0);
    }
    pieces
}

/// Trains the vocabulary on `texts` and returns the tokenizer as tokenizer.json text.
pub(crate) fn train_tokenizer_json(texts: &[&str], vocab_size: usize) -> Result<String, IntentError> {
    let counts = word_counts(texts)?;
    let pieces = learn_vocab(&counts, vocab_size.max(2), 2);
    let vocab: ahash::AHashMap<String, u32> = pieces.into_iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token(UNK.to_string())
        .continuing_subword_prefix(PREFIX.to_string())
        .build()
        .map_err(tok_err)?;
    let tok =
        TokenizerBuilder::<WordPiece, BertNormalizer, BertPreTokenizer, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(model)
            .with_normalizer(Some(normalizer()))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .build()
            .map_err(tok_err)?;
    tok.to_string(false).map_err(tok_err)
}
