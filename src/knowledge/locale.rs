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
    /// What each FAQ category is called in this language ("delivery": "bezorging"), for the menu and the
    /// off-topic decline. A category without a name here is shown by its id.
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, String>,
    /// The word joining the last two items of a list ("en", "and").
    pub and: String,
    /// Short replies that accept the bot's offer ("ja", "graag", "yes please").
    pub yes: Vec<String>,
    /// Short replies that decline it ("nee", "no thanks").
    pub no: Vec<String>,
    /// Whole messages that ask for help without naming a topic ("help", "ik heb een vraag"): answered with the menu.
    pub vague: Vec<String>,
    /// The numbers one to ten as words, for ratings typed as text ("vier", "four").
    pub numbers: Vec<String>,
    /// Words by which a customer refers to the shop itself ("jullie", "your store"): a question that mentions
    /// the shop is about the shop, never declined as off-topic (a person answers what the FAQ does not).
    #[serde(default)]
    pub about_us: Vec<String>,
    pub replies: Replies,
    /// What the browser pages (the widget, the agent console) say in this language, by key (`widget_send`,
    /// `console_claim`, ...). Every served language has the same keys; the bot never reads them. `web` hands them
    /// to the pages as they load, so a language is added without touching the pages.
    pub ui: std::collections::BTreeMap<String, String>,
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
    yes: Vec<String>,
    no: Vec<String>,
    vague: Vec<String>,
    numbers: Vec<String>,
    about_us: Vec<String>,
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
    /// Appended to a hand-off message within office hours: `{position}` and `{wait}` (one of the next two).
    pub queue_position: String,
    /// The expected wait when it is one minute.
    pub wait_one_minute: String,
    /// The expected wait in minutes otherwise: `{minutes}`.
    pub wait_minutes: String,
    /// Appended to a hand-off message outside office hours: `{when}` (for example "maandag om 08:00").
    pub out_of_hours: String,
    /// `{day}` and `{time}` of the next opening, as used in `{when}`.
    pub when: String,
    /// Sent by the bot when an agent resolved the conversation.
    pub rating_question: String,
    /// The customer typed a rating in reply: `{score}`.
    pub rating_thanks: String,
    /// A reply to the rating question with a number outside 1-5.
    pub rating_invalid: String,
    /// A question about something the shop does not do: `{topics}` lists what the bot can help with. Ends with
    /// an offer to connect a colleague.
    pub off_topic: String,
    /// The customer declined the offer of a colleague (or the rating).
    pub offer_declined: String,
    /// Opens the menu for a message that names no topic; the numbered options follow.
    pub menu: String,
    /// One numbered menu option: `{n}` and `{topic}`.
    pub menu_option: String,
    /// The menu's last option: a person.
    pub menu_person: String,
    /// Opens the questions of the topic the customer chose from the menu: `{topic}`.
    pub menu_topic: String,
    /// The conversation was ended.
    pub ended: String,
}

/// Longest message read as a typed rating ("ik geef jullie een 4"); longer ones are questions.
const MAX_RATING_WORDS: usize = 6;

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
            yes: self.yes.iter().map(|w| normalize(w)).collect(),
            no: self.no.iter().map(|w| normalize(w)).collect(),
            vague: self.vague.iter().map(|w| normalize(w)).collect(),
            numbers: self.numbers.iter().map(|w| normalize(w)).collect(),
            about_us: padded(&self.about_us),
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

    /// Whether the whole normalised message accepts an offer ("ja graag"); `Some(false)` when it declines it.
    pub fn yes_or_no(&self, normalized: &str) -> Option<bool> {
        if self.prepared.yes.iter().any(|p| p == normalized) {
            Some(true)
        } else if self.prepared.no.iter().any(|p| p == normalized) {
            Some(false)
        } else {
            None
        }
    }

    /// Whether the normalised message refers to the shop itself ("bij jullie", "in your store").
    pub fn mentions_us(&self, normalized: &str) -> bool {
        let padded = format!(" {normalized} ");
        self.prepared.about_us.iter().any(|phrase| padded.contains(phrase.as_str()))
    }

    /// Whether the whole normalised message asks for help without a topic ("help", "ik heb een vraag").
    pub fn is_vague(&self, normalized: &str) -> bool {
        self.prepared.vague.iter().any(|p| p == normalized)
    }

    /// The number a short reply gives as a rating ("4", "vier", "5 sterren", "4 van de 5", "a four"), if it
    /// gives exactly one. Out-of-range numbers are returned too, so the caller can say what is allowed.
    pub fn typed_rating(&self, normalized: &str) -> Option<u32> {
        let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        if words.is_empty() || words.len() > MAX_RATING_WORDS {
            return None;
        }
        let as_number = |word: &str| -> Option<u32> {
            word.parse::<u32>()
                .ok()
                .or_else(|| self.prepared.numbers.iter().position(|n| n == word).map(|i| i as u32 + 1))
        };
        let digits: Vec<u32> = words.iter().filter_map(|w| w.parse::<u32>().ok()).collect();
        let mut numbers: Vec<u32> =
            if digits.is_empty() { words.iter().filter_map(|w| as_number(w)).collect() } else { digits };
        // "4 van de 5", "four out of five", "4/5": the scale is not the score.
        if numbers.len() == 2 && numbers[1] == 5 {
            numbers.pop();
        }
        // "een vier": an article that is also a number word comes first; the score is the last number.
        numbers.last().copied()
    }

    /// The name of an FAQ category in this language.
    pub fn category_name(&self, category: &str) -> String {
        self.categories.get(category).cloned().unwrap_or_else(|| category.replace(['-', '_'], " "))
    }

    /// "a, b en c".
    pub fn list(&self, items: &[String]) -> String {
        match items {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} {} {last}", init.join(", "), self.and),
        }
    }

    /// "ongeveer 1 minuut" against "ongeveer 3 minuten".
    pub fn wait(&self, minutes: i64) -> String {
        if minutes == 1 {
            self.replies.wait_one_minute.clone()
        } else {
            self.replies.wait_minutes.replace("{minutes}", &minutes.to_string())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(language: &str) -> Locale {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("knowledge-base/locales/{language}.yaml"));
        Locale::load(&path, language).unwrap()
    }

    #[test]
    fn ratings_typed_as_text() {
        let (nl, en) = (shipped("nl"), shipped("en"));
        for (text, score) in [("4", 4), ("vier", 4), ("5 sterren", 5), ("een 3", 3), ("4 van de 5", 4), ("4/5", 4)] {
            assert_eq!(nl.typed_rating(&normalize(text)), Some(score), "{text:?}");
        }
        for (text, score) in [("four stars", 4), ("1", 1), ("i'd give it a 2", 2), ("five out of five", 5)] {
            assert_eq!(en.typed_rating(&normalize(text)), Some(score), "{text:?}");
        }
        assert_eq!(nl.typed_rating(&normalize("7")), Some(7), "out of range is the caller's to refuse");
        assert_eq!(nl.typed_rating(&normalize("geweldig geholpen")), None);
        assert_eq!(nl.typed_rating(&normalize("ik wacht nu al 4 dagen op mijn pakket van jullie")), None, "a question");
    }

    #[test]
    fn yes_no_menu_words_and_the_minutes() {
        let (nl, en) = (shipped("nl"), shipped("en"));
        assert_eq!(nl.yes_or_no("ja graag"), Some(true));
        assert_eq!(en.yes_or_no("no thanks"), Some(false));
        assert_eq!(en.yes_or_no("where is my parcel"), None);
        assert!(nl.is_vague("hulp") && en.is_vague("issue") && !en.is_vague("issue with my order"));
        assert_eq!((nl.wait(1), nl.wait(3)), ("1 minuut".to_owned(), "3 minuten".to_owned()));
        assert_eq!((en.wait(1), en.wait(2)), ("1 minute".to_owned(), "2 minutes".to_owned()));
        assert_eq!(nl.list(&["a".into(), "b".into(), "c".into()]), "a, b en c");
        assert_eq!(en.category_name("delivery"), "delivery");
        assert_eq!(nl.category_name("gift-cards"), "gift cards", "a category without a name shows by its id");
    }
}
