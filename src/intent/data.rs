//! Training and evaluation data: loket's own training set (every FAQ entry is an intent, plus the conversational
//! intents of `knowledge-base/intents/`), its deterministic validation split, and the public formats `loket eval`
//! reads (CLINC150 JSON, `text,label` CSV).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::Example;
use crate::knowledge::KnowledgeBase;
use crate::text::normalize;

/// Label of out-of-scope examples in loket's own training set.
pub const OUT_OF_SCOPE: &str = "out_of_scope";
/// Conversational intents the policy acts on (besides FAQ entries and out-of-scope).
pub const GREETING: &str = "greeting";
pub const THANKS: &str = "thanks";
pub const GOODBYE: &str = "goodbye";
pub const HUMAN_REQUEST: &str = "human_request";
pub const FRUSTRATION: &str = "frustration";
/// Every example goes to validation at this stride (per label), the rest to training.
const VALIDATION_STRIDE: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("training data is invalid:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path)
        .map_err(|e| DatasetError::Read { path: path.display().to_string(), reason: e.to_string() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationalFile {
    intents: Vec<ConversationalIntent>,
}

#[derive(Deserialize)]
struct ConversationalIntent {
    id: String,
    #[serde(flatten)]
    languages: BTreeMap<String, Vec<String>>,
}

/// One example with the language it is written in, for validation messages.
struct Sourced {
    label: String,
    language: String,
    text: String,
}

/// The whole training set of the service: FAQ examples and conversational intents in every configured language.
/// Reports every problem: an intent with fewer than 2 examples in a language, a missing language, the same
/// example under two intents.
pub fn training_set(
    kb: &KnowledgeBase,
    conversational: &Path,
    languages: &[String],
) -> Result<Vec<Example>, DatasetError> {
    let parsed: ConversationalFile = serde_norway::from_str(&read(conversational)?)
        .map_err(|e| DatasetError::Read { path: conversational.display().to_string(), reason: e.to_string() })?;
    let mut sourced = Vec::new();
    for faq in &kb.faqs {
        for (language, translation) in &faq.translations {
            sourced.extend(translation.examples().map(|text| Sourced {
                label: faq.id.clone(),
                language: language.clone(),
                text: text.to_owned(),
            }));
        }
    }
    let mut problems = Vec::new();
    for intent in parsed.intents {
        for language in languages {
            if !intent.languages.contains_key(language) {
                problems.push(format!("intent {}: missing language {language}", intent.id));
            }
        }
        for (language, texts) in intent.languages {
            sourced.extend(texts.into_iter().map(|text| Sourced {
                label: intent.id.clone(),
                language: language.clone(),
                text,
            }));
        }
    }
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut owner: HashMap<String, &str> = HashMap::new();
    for example in &sourced {
        *counts.entry((&example.label, &example.language)).or_default() += 1;
        if let Some(other) = owner.insert(normalize(&example.text), &example.label)
            && other != example.label
        {
            problems.push(format!("example {:?} belongs to both {other} and {}", example.text, example.label));
        }
    }
    for ((label, language), count) in counts {
        if count < 2 {
            problems.push(format!("intent {label}: only {count} example in {language}, needs at least 2"));
        }
    }
    if !problems.is_empty() {
        return Err(DatasetError::Invalid(problems));
    }
    Ok(sourced.into_iter().map(|s| Example { text: s.text, label: s.label }).collect())
}

/// Deterministic split: every `VALIDATION_STRIDE`-th example of each label (counting from the second) goes to
/// validation, so every label keeps most of its examples for training and is represented in both.
pub fn split(examples: &[Example]) -> (Vec<Example>, Vec<Example>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for example in examples {
        let n = seen.entry(&example.label).or_default();
        *n += 1;
        if *n % VALIDATION_STRIDE == 2 % VALIDATION_STRIDE {
            validation.push(example.clone())
        } else {
            train.push(example.clone())
        }
    }
    (train, validation)
}

/// CLINC150 (Larson et al. 2019), `data_full.json`: the in-scope and out-of-scope lists merged per split.
pub struct Clinc150 {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
}

/// The out-of-scope label of CLINC150.
pub const CLINC_OOS: &str = "oos";

pub fn read_clinc150(path: &Path) -> Result<Clinc150, DatasetError> {
    let json: HashMap<String, Vec<(String, String)>> = serde_json::from_str(&read(path)?)
        .map_err(|e| DatasetError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    let take = |names: [&str; 2]| -> Result<Vec<Example>, DatasetError> {
        let mut out = Vec::new();
        for name in names {
            let list = json.get(name).ok_or_else(|| DatasetError::Read {
                path: path.display().to_string(),
                reason: format!("no list {name:?}"),
            })?;
            out.extend(list.iter().map(|(text, label)| Example { text: text.clone(), label: label.clone() }));
        }
        Ok(out)
    };
    Ok(Clinc150 {
        train: take(["train", "oos_train"])?,
        validation: take(["val", "oos_val"])?,
        test: take(["test", "oos_test"])?,
    })
}

/// How CLINC150 is cut for `loket eval --protocol`: each protocol is one row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Every list as published: out-of-scope examples in train, validation and test.
    Full,
    /// No out-of-scope examples in training or validation, only in test: the case of every real FAQ.
    NoOos,
    /// The first `n` training examples of each intent, no out-of-scope examples, no validation list: the
    /// model calibrates on a hold-out of its own few examples, as it must for a FAQ.
    FewShot(usize),
}

/// One protocol's data: `validation` is `None` when the model must calibrate on its training data.
pub struct Split {
    pub train: Vec<Example>,
    pub validation: Option<Vec<Example>>,
    pub test: Vec<Example>,
}

impl Clinc150 {
    pub fn protocol(&self, protocol: Protocol) -> Split {
        let in_scope =
            |list: &[Example]| -> Vec<Example> { list.iter().filter(|e| e.label != CLINC_OOS).cloned().collect() };
        match protocol {
            Protocol::Full => {
                Split { train: self.train.clone(), validation: Some(self.validation.clone()), test: self.test.clone() }
            }
            Protocol::NoOos => Split {
                train: in_scope(&self.train),
                validation: Some(in_scope(&self.validation)),
                test: self.test.clone(),
            },
            Protocol::FewShot(n) => {
                Split { train: first_per_label(&in_scope(&self.train), n), validation: None, test: self.test.clone() }
            }
        }
    }
}

/// The first `n` examples of every label, in file order.
pub fn first_per_label(examples: &[Example], n: usize) -> Vec<Example> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    examples
        .iter()
        .filter(|e| {
            let count = seen.entry(&e.label).or_default();
            *count += 1;
            *count <= n
        })
        .cloned()
        .collect()
}

/// A CSV file's examples, and what was left out or looks wrong.
#[derive(Debug, Default)]
pub struct CsvExamples {
    pub examples: Vec<Example>,
    /// Line numbers (1-based, header is line 1) of rows skipped because their text is empty.
    pub empty_rows: Vec<usize>,
    /// Labels with a single example, and its line: they train, but cannot be held out and learn little.
    pub single_examples: Vec<(String, usize)>,
}

/// A `text,label` CSV with a header line. Rows with empty text are skipped and counted; a row without a label,
/// or labels that differ only in case ("Refund" and "refund", surely one intent written two ways), are errors
/// naming the lines.
pub fn read_csv(path: &Path) -> Result<CsvExamples, DatasetError> {
    let bad = |reason: String| DatasetError::Read { path: path.display().to_string(), reason };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| bad(e.to_string()))?;
    let mut out = CsvExamples::default();
    let mut lines_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let text = record.get(0).unwrap_or("").trim();
        let label = record.get(1).unwrap_or("").trim();
        if text.is_empty() {
            out.empty_rows.push(line);
            continue;
        }
        if label.is_empty() {
            problems.push(format!("{}: line {line}: expected text,label but the label is empty", path.display()));
            continue;
        }
        lines_of.entry(label.to_owned()).or_default().push(line);
        out.examples.push(Example { text: text.to_owned(), label: label.to_owned() });
    }
    let mut by_folded: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for label in lines_of.keys() {
        by_folded.entry(label.to_lowercase()).or_default().push(label);
    }
    for variants in by_folded.values().filter(|v| v.len() > 1) {
        let named: Vec<String> =
            variants.iter().map(|l| format!("{l:?} (first on line {})", lines_of[*l][0])).collect();
        problems.push(format!("{}: labels differ only in case: {}", path.display(), named.join(", ")));
    }
    if !problems.is_empty() {
        return Err(DatasetError::Invalid(problems));
    }
    out.single_examples =
        lines_of.into_iter().filter(|(_, lines)| lines.len() == 1).map(|(label, lines)| (label, lines[0])).collect();
    Ok(out)
}
