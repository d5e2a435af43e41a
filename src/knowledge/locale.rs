//! Per-language texts that are not FAQ entries: the greeting, small-talk phrases and replies, the phrases with
//! which a customer asks for a person, and the bot's fixed sentences. Adding a language is adding one such file.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tantivy::tokenizer::Language;

use super::files::yaml_problem;
use super::{Dictionary, Problem};
use crate::text::normalize;

/// Small-talk kinds the bot answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmallTalk {
    Greeting,
    Thanks,
    Goodbye,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locale {
    /// Language code, equal to the file name.
    pub language: String,
    /// The language's own name.
    pub name: String,
    /// Snowball stemmer and stop-word list for the search index (dutch, english, french, german, ...).
    pub stemmer: String,
    /// Words ignored by search on top of the stemmer's own stop-word list.
    #[serde(default)]
    pub stop_words: Vec<String>,
    /// The first message of every conversation.
    pub greeting: String,
    pub small_talk: SmallTalkPhrases,
    /// Phrases that mean "I want a person"; any one of them in a message hands off at once.
    pub human_request: Vec<String>,
    /// Phrases that signal frustration or anger; such a message goes to a person sooner.
    #[serde(default)]
    pub frustration: Vec<String>,
    /// Weekday names, Monday first, for telling when a person will reply.
    pub weekdays: Vec<String>,
    /// "today" and "tomorrow" in this language.
    pub today: String,
    pub tomorrow: String,
    /// Words that may surround small talk without making it a question ("hoor", "nog", "very").
    #[serde(default)]
    pub filler: Vec<String>,
    pub replies: Replies,
    /// The phrases above, normalised once at load instead of on every message.
    #[serde(skip)]
    prepared: Prepared,
    /// The language's word list (`dictionaries/<language>.txt.zst` next to `locales/`), if it has one.
    #[serde(skip)]
    dictionary: Option<Arc<Dictionary>>,
}

#[derive(Debug, Clone, Default)]
struct Prepared {
    /// " phrase " forms, for whole-word containment.
    human_request: Vec<String>,
    frustration: Vec<String>,
    /// Longest first, so "dank je wel" is taken whole before "dank".
    small_talk: Vec<(String, SmallTalk)>,
    filler: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmallTalkPhrases {
    pub greeting: Vec<String>,
    pub thanks: Vec<String>,
    pub goodbye: Vec<String>,
}

/// The bot's fixed sentences. `{n}` and `{question}` are filled in where noted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub greeting: String,
    pub thanks: String,
    pub goodbye: String,
    /// Opens a clarifying question; the numbered candidates follow.
    pub clarify: String,
    /// One numbered candidate: `{n}` and `{question}`.
    pub clarify_option: String,
    /// Closes a clarifying question.
    pub clarify_hint: String,
    /// The customer asked for a person.
    pub handoff_requested: String,
    /// The bot could not answer with confidence.
    pub handoff_unsure: String,
    /// The customer is frustrated: acknowledge, then hand off.
    pub handoff_frustrated: String,
    /// The topic is always handled by a person.
    pub handoff_specialist: String,
    /// Appended to a hand-off message within office hours: `{position}` and `{minutes}`.
    pub queue_position: String,
    /// Appended to a hand-off message outside office hours: `{when}` (for example "maandag om 08:00").
    pub out_of_hours: String,
    /// `{day}` and `{time}` of the next opening, as used in `{when}`.
    pub when: String,
    /// Sent by the bot when an agent resolved the conversation.
    pub rating_question: String,
    /// The conversation was ended.
    pub ended: String,
}

/// Words that count as ordinal answers to a clarifying question, per position (in every language).
const ORDINALS: [&[&str]; 5] = [
    &["1", "een", "eerste", "de eerste", "one", "first", "the first", "the first one", "nummer 1", "number 1"],
    &["2", "twee", "tweede", "de tweede", "two", "second", "the second", "the second one", "nummer 2", "number 2"],
    &["3", "drie", "derde", "de derde", "three", "third", "the third", "the third one", "nummer 3", "number 3"],
    &["4", "vier", "vierde", "de vierde", "four", "fourth", "the fourth", "nummer 4", "number 4"],
    &["5", "vijf", "vijfde", "de vijfde", "five", "fifth", "the fifth", "nummer 5", "number 5"],
];

impl Locale {
    pub(super) fn load(path: &Path, language: &str) -> Result<Locale, Problem> {
        let problem = |line: usize, reason: String| Problem { file: path.to_owned(), line, reason };
        let text = std::fs::read_to_string(path).map_err(|e| problem(0, format!("cannot read: {e}")))?;
        let locale: Locale = serde_norway::from_str(&text).map_err(|e| yaml_problem(path, &e))?;
        if locale.language != language {
            return Err(problem(1, format!("language is {:?}, expected {language:?}", locale.language)));
        }
        let mut locale = locale;
        locale.prepare();
        if locale.weekdays.len() != 7 {
            return Err(problem(0, "weekdays: needs 7 names, Monday first".into()));
        }
        if locale.stemmer_language().is_none() {
            return Err(problem(0, format!("unknown stemmer {:?}", locale.stemmer)));
        }
        Ok(locale)
    }

    fn prepare(&mut self) {
        let padded = |list: &[String]| list.iter().map(|p| format!(" {} ", normalize(p))).collect::<Vec<_>>();
        let kinds = [
            (SmallTalk::Greeting, &self.small_talk.greeting),
            (SmallTalk::Thanks, &self.small_talk.thanks),
            (SmallTalk::Goodbye, &self.small_talk.goodbye),
        ];
        let mut small_talk: Vec<(String, SmallTalk)> = kinds
            .iter()
            .flat_map(|(kind, list)| list.iter().map(move |p| (format!(" {} ", normalize(p)), *kind)))
            .collect();
        small_talk.sort_by_key(|(phrase, _)| std::cmp::Reverse(phrase.len()));
        self.prepared = Prepared {
            human_request: padded(&self.human_request),
            frustration: padded(&self.frustration),
            small_talk,
            filler: self.filler.iter().map(|w| normalize(w)).collect(),
        };
    }

    /// The tantivy language for this locale's stemmer and stop words.
    pub fn stemmer_language(&self) -> Option<Language> {
        Some(match self.stemmer.as_str() {
            "danish" => Language::Danish,
            "dutch" => Language::Dutch,
            "english" => Language::English,
            "finnish" => Language::Finnish,
            "french" => Language::French,
            "german" => Language::German,
            "italian" => Language::Italian,
            "norwegian" => Language::Norwegian,
            "portuguese" => Language::Portuguese,
            "spanish" => Language::Spanish,
            "swedish" => Language::Swedish,
            _ => return None,
        })
    }

    /// Whether the language writes compounds as one word ("retourlabel", "Rücksendeetikett"), so its word list
    /// cannot hold them all: the Germanic languages but English, and Finnish.
    pub fn writes_compounds(&self) -> bool {
        matches!(self.stemmer.as_str(), "danish" | "dutch" | "finnish" | "german" | "norwegian" | "swedish")
    }

    /// The language's word list, if it has one.
    pub fn dictionary(&self) -> Option<&Dictionary> {
        self.dictionary.as_deref()
    }

    pub(super) fn dictionary_shared(&self) -> Option<Arc<Dictionary>> {
        self.dictionary.clone()
    }

    pub(super) fn set_dictionary(&mut self, dictionary: Arc<Dictionary>) {
        self.dictionary = Some(dictionary);
    }

    /// Whether the normalised message asks for a person.
    pub fn asks_for_human(&self, normalized: &str) -> bool {
        let padded = format!(" {normalized} ");
        self.prepared.human_request.iter().any(|phrase| padded.contains(phrase.as_str()))
    }

    /// The small-talk kind when the whole message is small talk (greetings, thanks, goodbyes and filler only).
    /// "hallo, waar is mijn pakket" is a question, not small talk.
    pub fn small_talk(&self, normalized: &str) -> Option<SmallTalk> {
        let mut rest = format!(" {normalized} ");
        let mut first: Option<(usize, SmallTalk)> = None;
        for (needle, kind) in &self.prepared.small_talk {
            if let Some(at) = rest.find(needle.as_str()) {
                if first.is_none_or(|(position, _)| at < position) {
                    first = Some((at, *kind));
                }
                rest = rest.replace(needle.as_str(), " ");
            }
        }
        let (_, kind) = first?;
        rest.split_whitespace().all(|word| self.prepared.filler.iter().any(|f| f == word)).then_some(kind)
    }

    /// Whether the message sounds frustrated or angry: a listed phrase, three exclamation marks, or shouting.
    pub fn sounds_frustrated(&self, text: &str, normalized: &str) -> bool {
        let padded = format!(" {normalized} ");
        let phrase = self.prepared.frustration.iter().any(|p| padded.contains(p.as_str()));
        let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
        let upper = letters.iter().filter(|c| c.is_uppercase()).count();
        let shouting = letters.len() >= 12 && upper * 10 >= letters.len() * 8;
        phrase || text.matches('!').count() >= 3 || shouting
    }

    /// "maandag om 08:00", "vandaag om 14:00": when a person will reply.
    pub fn describe_when(&self, weekday: usize, days_ahead: i64, time: &str) -> String {
        let day = match days_ahead {
            0 => self.today.clone(),
            1 => self.tomorrow.clone(),
            _ => self.weekdays.get(weekday).cloned().unwrap_or_default(),
        };
        self.replies.when.replace("{day}", &day).replace("{time}", time)
    }

    /// The reply to a small-talk message.
    pub fn small_talk_reply(&self, kind: SmallTalk) -> &str {
        match kind {
            SmallTalk::Greeting => &self.replies.greeting,
            SmallTalk::Thanks => &self.replies.thanks,
            SmallTalk::Goodbye => &self.replies.goodbye,
        }
    }
}

/// The 0-based option a reply to a clarifying question picks ("2", "de tweede", "the first one"), if any.
pub fn chosen_option(normalized: &str, options: usize) -> Option<usize> {
    ORDINALS.iter().take(options).position(|words| words.contains(&normalized))
}
