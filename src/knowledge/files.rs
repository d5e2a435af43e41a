//! Reads the knowledge-base files an editor maintains by hand (`faq/<category>.yaml`, `locales/<lang>.yaml`)
//! and validates them, reporting every problem with its file, line and reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::validate::{Violation, check_across, check_entry};
use super::{Dictionary, Faq, KnowledgeBase, Locale, Translation};

/// One thing wrong with a knowledge-base file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, 0 when the problem is not tied to a line.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    category: String,
    skill: String,
    entries: Vec<EntryFile>,
}

#[derive(Serialize, Deserialize)]
struct EntryFile {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skill: Option<String>,
    /// Every other key is a language code.
    #[serde(flatten)]
    translations: BTreeMap<String, TranslationFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslationFile {
    question: String,
    phrasings: Vec<String>,
    answer: String,
}

/// Loads and validates a knowledge-base directory.
pub fn load_dir(dir: &Path, languages: &[String]) -> Result<KnowledgeBase, Vec<Problem>> {
    let mut problems = Vec::new();
    let faqs = match read_faq_dir(dir) {
        Ok(files) => parse_files(&files, languages).unwrap_or_else(|found| {
            problems = found;
            Vec::new()
        }),
        Err(problem) => {
            problems.push(problem);
            Vec::new()
        }
    };
    let locales = load_locales(dir, languages).unwrap_or_else(|found| {
        problems.extend(found);
        BTreeMap::new()
    });
    if problems.is_empty() { Ok(KnowledgeBase::new(faqs, locales)) } else { Err(problems) }
}

/// The locales of `languages` from `dir/locales`, each with its word list from `dir/dictionaries` when there is
/// one (`<language>.txt.zst` or `<language>.txt`).
pub fn load_locales(dir: &Path, languages: &[String]) -> Result<BTreeMap<String, Locale>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut locales = BTreeMap::new();
    for language in languages {
        match Locale::load(&dir.join("locales").join(format!("{language}.yaml")), language) {
            Ok(mut locale) => {
                let candidates =
                    ["txt.zst", "txt"].map(|ext| dir.join("dictionaries").join(format!("{language}.{ext}")));
                match candidates.iter().find(|path| path.is_file()) {
                    Some(path) => match Dictionary::read_shared(path, locale.writes_compounds()) {
                        Ok(dictionary) => locale.set_dictionary(dictionary),
                        Err(e) => problems.push(Problem { file: path.clone(), line: 0, reason: e.to_string() }),
                    },
                    None => warn!(language, "no dictionary: the speller cannot tell typos from words it has not seen"),
                }
                locales.insert(language.clone(), locale);
            }
            Err(problem) => problems.push(problem),
        }
    }
    problems.extend(ui_differences(dir, &locales));
    if problems.is_empty() { Ok(locales) } else { Err(problems) }
}

/// The browser pages' texts (`ui`) must have the same keys in every language, or a page would show a key in one
/// of them: one problem per locale that lacks keys another has.
fn ui_differences(dir: &Path, locales: &BTreeMap<String, Locale>) -> Vec<Problem> {
    let every: std::collections::BTreeSet<&String> = locales.values().flat_map(|l| l.ui.keys()).collect();
    locales
        .iter()
        .filter_map(|(language, locale)| {
            let missing: Vec<&str> =
                every.iter().filter(|key| !locale.ui.contains_key(**key)).map(|key| key.as_str()).collect();
            (!missing.is_empty()).then(|| Problem {
                file: dir.join("locales").join(format!("{language}.yaml")),
                line: 0,
                reason: format!("ui: lacks {} that another language has", missing.join(", ")),
            })
        })
        .collect()
}

/// The `faq/*.yaml` files of a knowledge-base directory, by path, sorted.
pub fn read_faq_dir(dir: &Path) -> Result<Vec<(PathBuf, String)>, Problem> {
    read_category_files(&dir.join("faq"))
}

/// The category files (`*.yaml`) directly in `dir`, by path, sorted; none at all is a problem too.
pub fn read_category_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, Problem> {
    let mut paths = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
            .collect::<Vec<_>>(),
        Err(e) => return Err(Problem { file: dir.to_owned(), line: 0, reason: format!("cannot read directory: {e}") }),
    };
    if paths.is_empty() {
        return Err(Problem { file: dir.to_owned(), line: 0, reason: "no *.yaml files".into() });
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(e) => Err(Problem { file: path, line: 0, reason: format!("cannot read: {e}") }),
        })
        .collect()
}

/// Parses and validates category files (path and text), all-or-nothing: every problem is reported.
pub fn parse_files(files: &[(PathBuf, String)], languages: &[String]) -> Result<Vec<Faq>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut faqs = Vec::new();
    for (path, text) in files {
        faqs.extend(parse_category(path, text, languages, &mut problems));
    }
    for (position, violation) in check_across(faqs.iter().map(|(faq, _)| faq)) {
        let (faq, (file, line)) = &faqs[position];
        problems.push(entry_problem(file, *line, faq, violation));
    }
    if problems.is_empty() { Ok(faqs.into_iter().map(|(faq, _)| faq).collect()) } else { Err(problems) }
}

fn entry_problem(file: &Path, line: usize, faq: &Faq, violation: Violation) -> Problem {
    Problem {
        file: file.to_owned(),
        line,
        reason: format!("entry {}: {}: {}", faq.id, violation.field, violation.reason),
    }
}

/// Writes entries as category files, one per category (`<category>.yaml`), in the format `load_dir` reads.
pub fn export(faqs: &[&Faq]) -> Vec<(String, String)> {
    let mut by_category: BTreeMap<&str, Vec<&Faq>> = BTreeMap::new();
    for faq in faqs {
        by_category.entry(&faq.category).or_default().push(faq);
    }
    by_category
        .into_iter()
        .map(|(category, entries)| {
            // The file's skill is the one most of its entries use; the others name theirs.
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for faq in &entries {
                *counts.entry(&faq.skill).or_default() += 1;
            }
            let skill = counts.iter().max_by_key(|(_, n)| **n).map(|(s, _)| s.to_string()).unwrap_or_default();
            let file = CategoryFile {
                category: category.to_owned(),
                entries: entries
                    .iter()
                    .map(|faq| EntryFile {
                        id: faq.id.clone(),
                        skill: (faq.skill != skill).then(|| faq.skill.clone()),
                        translations: faq
                            .translations
                            .iter()
                            .map(|(language, t)| {
                                let t = TranslationFile {
                                    question: t.question.clone(),
                                    phrasings: t.phrasings.clone(),
                                    answer: t.answer.clone(),
                                };
                                (language.clone(), t)
                            })
                            .collect(),
                    })
                    .collect(),
                skill,
            };
            let text = serde_norway::to_string(&file).expect("plain strings and lists serialise");
            (format!("{category}.yaml"), text)
        })
        .collect()
}

pub(super) fn yaml_problem(path: &Path, error: &serde_norway::Error) -> Problem {
    let line = error.location().map_or(0, |l| l.line());
    Problem { file: path.to_owned(), line, reason: error.to_string() }
}

/// Parses one category file; entries are returned with where they were found, for cross-entry checks.
fn parse_category(
    path: &Path,
    text: &str,
    languages: &[String],
    problems: &mut Vec<Problem>,
) -> Vec<(Faq, (PathBuf, usize))> {
    let parsed: CategoryFile = match serde_norway::from_str(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(yaml_problem(path, &e));
            return Vec::new();
        }
    };
    // The i-th `id:` line is the i-th entry: serde does not keep positions of values.
    let id_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().trim_start_matches("- ").starts_with("id:"))
        .map(|(i, _)| i + 1)
        .collect();
    let mut faqs = Vec::new();
    for (position, entry) in parsed.entries.into_iter().enumerate() {
        let line = id_lines.get(position).copied().unwrap_or(0);
        let translations = entry
            .translations
            .into_iter()
            .map(|(language, t)| {
                let translation = Translation {
                    question: t.question.trim().to_owned(),
                    phrasings: t.phrasings.iter().map(|p| p.trim().to_owned()).collect(),
                    answer: t.answer.trim().to_owned(),
                };
                (language, translation)
            })
            .collect();
        let faq = Faq {
            id: entry.id,
            category: parsed.category.clone(),
            skill: entry.skill.unwrap_or_else(|| parsed.skill.clone()),
            translations,
        };
        for violation in check_entry(&faq, languages) {
            problems.push(entry_problem(path, line, &faq, violation));
        }
        faqs.push((faq, (path.to_owned(), line)));
    }
    faqs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<String> {
        vec!["nl".into(), "en".into()]
    }

    #[test]
    fn a_locale_lacking_a_page_text_another_language_has_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base/locales");
        std::fs::create_dir(dir.path().join("locales")).unwrap();
        for language in ["nl", "en"] {
            let text = std::fs::read_to_string(shipped.join(format!("{language}.yaml"))).unwrap();
            let text = if language == "en" { text.replace("  widget_send: Send\n", "") } else { text };
            std::fs::write(dir.path().join("locales").join(format!("{language}.yaml")), text).unwrap();
        }
        let problems = load_locales(dir.path(), &langs()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].file.ends_with("locales/en.yaml"), "{problems:?}");
        assert!(problems[0].reason.contains("widget_send"), "{problems:?}");
        assert!(load_locales(&shipped.join(".."), &langs()).is_ok(), "the shipped locales agree");
    }

    fn parse(text: &str) -> (Vec<Faq>, Vec<Problem>) {
        match parse_files(&[(PathBuf::from("faq/test.yaml"), text.to_owned())], &langs()) {
            Ok(faqs) => (faqs, Vec::new()),
            Err(problems) => (Vec::new(), problems),
        }
    }

    const GOOD: &str = "category: c\nskill: s\nentries:\n  - id: a\n    nl:\n      question: Vraag?\n      phrasings: [een, twee]\n      answer: Antwoord.\n    en:\n      question: Question?\n      phrasings: [one, two]\n      answer: Answer.\n";

    #[test]
    fn a_good_file_parses() {
        let (faqs, problems) = parse(GOOD);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(faqs[0].skill, "s");
        assert_eq!(faqs[0].translations["en"].phrasings, vec!["one", "two"]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let (_, problems) = parse("category: c\nskill: s\nentries:\n  - id: a\n   nl: [\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line >= 4, "{:?}", problems[0]);
        assert!(problems[0].to_string().starts_with("faq/test.yaml:"));
    }

    #[test]
    fn missing_language_empty_answer_and_duplicates_are_reported() {
        let text = GOOD.replace("answer: Antwoord.", "answer: ' '")
            + "  - id: a\n    nl:\n      question: Iets\n      phrasings: [een, drie]\n      answer: x\n";
        let (_, problems) = parse(&text);
        let reasons: Vec<_> = problems.iter().map(|p| p.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("nl.answer: is empty")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("missing language en")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("duplicate id a")), "{reasons:?}");
        assert!(problems.iter().any(|p| p.line == 13), "{problems:?}");
    }

    #[test]
    fn export_reads_back_the_same_entries() {
        let (faqs, _) = parse(GOOD);
        let files: Vec<(PathBuf, String)> = export(&faqs.iter().collect::<Vec<_>>())
            .into_iter()
            .map(|(name, text)| (PathBuf::from(name), text))
            .collect();
        let (again, problems) = parse(&files[0].1);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(again, faqs);
    }
}
