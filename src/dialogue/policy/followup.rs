//! Turns that answer what the bot asked or offered: the pending clarification or confirmation, the menu of
//! categories, and a customer asking for a person.

use super::*;

impl Policy {
    /// The customer asked for a person: hand off at once, routed by what the conversation was about.
    pub(super) fn person_requested(&self, mut turn: Draft, input: &TurnInput<'_>, locale: &Locale) -> Outcome {
        // "I want a person" names no topic: route by what the conversation was about, if anything.
        if input.memory.last_skill.is_some() {
            turn.skill = input.memory.last_skill.clone();
        }
        turn.handoff(HandoffReason::CustomerRequest, "the customer asked for a person");
        turn.say(&locale.replies.handoff_requested, None);
        self.finish(turn, input, DialogueMemory::default())
    }

    /// The reply to the bot's last question (a rating, clarify options, the menu, the offer of a colleague),
    /// when the message reads as one. Anything else is decided as a new question.
    pub(super) fn pending_reply(
        &self,
        knowledge: &Knowledge,
        input: &TurnInput<'_>,
        locale: &Locale,
        normalized: &str,
        turn: &mut Draft,
    ) -> Option<Outcome> {
        let memory = input.memory;
        if memory.pending_rating
            && let Some(score) = locale.typed_rating(normalized)
        {
            let mut turn = std::mem::replace(turn, Draft::new(input.language));
            turn.kind = DecisionKind::Rating;
            if let Ok(score @ 1..=5) = u8::try_from(score) {
                turn.explanation = format!("the customer rated the help {score} of 5");
                turn.rating = Some(score);
                turn.say(&locale.replies.rating_thanks.replace("{score}", &score.to_string()), None);
                return Some(self.finish(turn, input, DialogueMemory::default()));
            }
            turn.explanation = format!("{score} is not a rating from 1 to 5");
            turn.say(&locale.replies.rating_invalid, None);
            return Some(self.finish(turn, input, DialogueMemory { pending_rating: true, ..Default::default() }));
        }
        let pending = &memory.pending_options;
        if let Some(choice) = chosen_option(normalized, pending.len())
            && let Some(faq) = knowledge.base.faq(&pending[choice])
        {
            let mut turn = std::mem::replace(turn, Draft::new(input.language));
            turn.explanation = format!("the customer chose option {} of the clarifying question", choice + 1);
            turn.matches = vec![faq_match(faq, input.language, 1.0)];
            return Some(self.answer(turn, input, faq));
        }
        let menu = &memory.pending_menu;
        let picked = chosen_option(normalized, menu.len()).or_else(|| {
            menu.iter().position(|c| c != MENU_PERSON && normalize(&locale.category_name(c)) == normalized)
        });
        if let Some(choice) = picked {
            let mut turn = std::mem::replace(turn, Draft::new(input.language));
            if menu[choice] == MENU_PERSON {
                return Some(self.person_requested(turn, input, locale));
            }
            let category = &menu[choice];
            // By id: the same list whether the entries came from the files or the database.
            let mut options: Vec<&Faq> = knowledge
                .base
                .faqs
                .iter()
                .filter(|f| &f.category == category && f.translations.contains_key(input.language))
                .collect();
            options.sort_by(|a, b| a.id.cmp(&b.id));
            options.truncate(MENU_TOPIC_QUESTIONS);
            let topic = locale.category_name(category);
            turn.explanation = format!("the customer chose {category} from the menu");
            turn.skill = options.first().map(|f| f.skill.clone());
            let text = locale.replies.menu_topic.replace("{topic}", &topic);
            return Some(self.clarify(turn, input, locale, &text, &options, memory.failed_turns));
        }
        if memory.offered_person || memory.pending_rating {
            match locale.yes_or_no(normalized) {
                Some(true) if memory.offered_person => {
                    let turn = std::mem::replace(turn, Draft::new(input.language));
                    return Some(self.person_requested(turn, input, locale));
                }
                Some(false) => {
                    let mut turn = std::mem::replace(turn, Draft::new(input.language));
                    turn.kind = DecisionKind::SmallTalk;
                    turn.explanation = "the customer declined the bot's offer".into();
                    turn.say(&locale.replies.offer_declined, None);
                    return Some(self.finish(turn, input, DialogueMemory::default()));
                }
                _ => {}
            }
        }
        None
    }

    /// The menu: the biggest topics and a person, for a message that names no topic.
    pub(super) fn menu(
        &self,
        knowledge: &Knowledge,
        mut turn: Draft,
        input: &TurnInput<'_>,
        locale: &Locale,
    ) -> Outcome {
        turn.kind = DecisionKind::Menu;
        turn.explanation = format!("no topic named: menu ({})", turn.explanation);
        let mut options: Vec<String> = categories(knowledge).into_iter().take(self.config.menu_max_options).collect();
        options.push(MENU_PERSON.to_owned());
        let mut text = locale.replies.menu.clone();
        for (n, option) in options.iter().enumerate() {
            let topic =
                if option == MENU_PERSON { locale.replies.menu_person.clone() } else { locale.category_name(option) };
            let line = locale.replies.menu_option.replace("{n}", &(n + 1).to_string());
            text.push('\n');
            text.push_str(&line.replace("{topic}", &topic));
        }
        turn.say(&text, None);
        let memory =
            DialogueMemory { pending_menu: options, failed_turns: input.memory.failed_turns, ..Default::default() };
        self.finish(turn, input, memory)
    }
}
