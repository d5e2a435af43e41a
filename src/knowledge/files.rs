//! Reads the knowledge-base files an editor maintains by hand (`faq/<category>.yaml`, `locales/<lang>.yaml`)
//! and validates them, reporting every problem with its file, line and reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Faq, KnowledgeBase, Locale, MIN_PHRASINGS, Translation};
use crate::text::normalize;

const MAX_QUESTION_CHARS: usize = 300;
const MAX_ANSWER_CHARS: usize = 4000;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    category: String,
    skill: String,
    entries: Vec<EntryFile>,
}

#[derive(Deserialize)]
struct EntryFile {
    id: String,
    #[serde(default)]
    skill: Option<String>,
    /// Every other key is a language code.
    #[serde(flatten)]
    translations: BTreeMap<String, TranslationFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslationFile {
    question: String,
    phrasings: Vec<String>,
    answer: String,
}

/// Loads and validates a knowledge-base directory.
pub fn load_dir(dir: &Path, languages: &[String]) -> Result<KnowledgeBase, Vec<Problem>> {
    let mut problems = Vec::new();
    let faq_dir = dir.join("faq");
    let mut files = match std::fs::read_dir(&faq_dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
            .collect::<Vec<_>>(),
        Err(e) => {
            return Err(vec![Problem { file: faq_dir, line: 0, reason: format!("cannot read directory: {e}") }]);
        }
    };
    files.sort();
    let mut faqs = Vec::new();
    for path in &files {
        match std::fs::read_to_string(path) {
            Ok(text) => faqs.extend(parse_category(path, &text, languages, &mut problems)),
            Err(e) => problems.push(Problem { file: path.clone(), line: 0, reason: format!("cannot read: {e}") }),
        }
    }
    if files.is_empty() {
        problems.push(Problem { file: faq_dir, line: 0, reason: "no *.yaml files".into() });
    }
    check_across_entries(&faqs, &mut problems);

    let mut locales = BTreeMap::new();
    for language in languages {
        let path = dir.join("locales").join(format!("{language}.yaml"));
        match Locale::load(&path, language) {
            Ok(locale) => {
                locales.insert(language.clone(), locale);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(KnowledgeBase::new(faqs.into_iter().map(|(faq, _)| faq).collect(), locales))
    } else {
        Err(problems)
    }
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
        let mut problem = |reason: String| problems.push(Problem { file: path.to_owned(), line, reason });
        let id_ok =
            !entry.id.is_empty() && entry.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            problem(format!("id {:?}: use lowercase letters, digits and hyphens", entry.id));
        }
        for language in languages {
            if !entry.translations.contains_key(language) {
                problem(format!("entry {}: missing language {language}", entry.id));
            }
        }
        for (language, translation) in &entry.translations {
            if !languages.contains(language) {
                problem(format!("entry {}: language {language} is not configured", entry.id));
                continue;
            }
            let field = |name: &str| format!("entry {}: {language}.{name}", entry.id);
            if translation.question.trim().is_empty() {
                problem(format!("{}: is empty", field("question")));
            }
            if translation.answer.trim().is_empty() {
                problem(format!("{}: is empty", field("answer")));
            }
            if translation.answer.chars().count() > MAX_ANSWER_CHARS {
                problem(format!("{}: longer than {MAX_ANSWER_CHARS} characters", field("answer")));
            }
            if translation.phrasings.len() < MIN_PHRASINGS {
                problem(format!("{}: needs at least {MIN_PHRASINGS}", field("phrasings")));
            }
            for text in std::iter::once(&translation.question).chain(&translation.phrasings) {
                if text.trim().is_empty() || text.chars().count() > MAX_QUESTION_CHARS {
                    problem(format!("{}: {text:?} is empty or longer than {MAX_QUESTION_CHARS}", field("phrasings")));
                }
            }
        }
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
        faqs.push((faq, (path.to_owned(), line)));
    }
    faqs
}

/// Ids must be unique, and one phrasing must not teach two entries.
fn check_across_entries(faqs: &[(Faq, (PathBuf, usize))], problems: &mut Vec<Problem>) {
    let mut ids: HashMap<&str, &(PathBuf, usize)> = HashMap::new();
    let mut examples: HashMap<(String, String), &str> = HashMap::new();
    for (faq, place) in faqs {
        let problem = |reason: String| Problem { file: place.0.clone(), line: place.1, reason };
        if let Some(first) = ids.insert(&faq.id, place) {
            problems.push(problem(format!("duplicate id {} (first at {}:{})", faq.id, first.0.display(), first.1)));
        }
        for (language, translation) in &faq.translations {
            for example in translation.examples() {
                let key = (language.clone(), normalize(example));
                match examples.get(&key) {
                    Some(other) if *other != faq.id => problems.push(problem(format!(
                        "entry {}: {language} phrasing {example:?} also belongs to entry {other}",
                        faq.id
                    ))),
                    _ => {
                        examples.insert(key, &faq.id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<String> {
        vec!["nl".into(), "en".into()]
    }

    fn parse(text: &str) -> (Vec<Faq>, Vec<Problem>) {
        let mut problems = Vec::new();
        let faqs = parse_category(Path::new("faq/test.yaml"), text, &langs(), &mut problems);
        check_across_entries(&faqs, &mut problems);
        (faqs.into_iter().map(|(f, _)| f).collect(), problems)
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
}
