// The widget's own labels, per language (the bot's and agents' words come from loket: knowledge-base/locales).
export type Language = "nl" | "en";

const TEXTS = {
  nl: {
    title: "Klantenservice",
    launcher: "Chat met ons",
    close: "Chat sluiten",
    log: "Gesprek",
    input: "Je bericht",
    send: "Verstuur",
    you: "Jij",
    bot: "Assistent",
    agent: "Medewerker",
    system: "Melding",
    yes: "Ja, graag",
    no: "Nee, bedankt",
    rate: "Hoe tevreden ben je over de hulp?",
    star: (n: number) => `${n} van 5 sterren`,
    thanks: "Bedankt voor je beoordeling!",
    offline: "Verbinding verbroken, opnieuw verbinden…",
    failed: "Versturen mislukt: ",
  },
  en: {
    title: "Customer service",
    launcher: "Chat with us",
    close: "Close chat",
    log: "Conversation",
    input: "Your message",
    send: "Send",
    you: "You",
    bot: "Assistant",
    agent: "Agent",
    system: "Notice",
    yes: "Yes, please",
    no: "No, thanks",
    rate: "How satisfied are you with the help?",
    star: (n: number) => `${n} of 5 stars`,
    thanks: "Thank you for your rating!",
    offline: "Connection lost, reconnecting…",
    failed: "Could not send: ",
  },
} as const;

export type Texts = (typeof TEXTS)[Language];

/// The page's language when it is one of ours, else the browser's, else Dutch.
export function pickLanguage(...candidates: (string | null | undefined)[]): Language {
  for (const candidate of candidates) {
    const code = (candidate ?? "").slice(0, 2).toLowerCase();
    if (code === "nl" || code === "en") return code;
  }
  return "nl";
}

export function texts(language: Language): Texts {
  return TEXTS[language];
}
