// The chat inside the widget's iframe (served from loket's origin). It starts a conversation with the widget key,
// keeps the conversation token in this frame's session storage (so a reload keeps the conversation), shows every
// event of the conversation from WatchConversation (resuming after the last sequence number when the connection
// drops, so nothing is lost or doubled), and offers the bot's options as buttons. Text is always set as text.
import { ConnectError, Code } from "@connectrpc/connect";
import {
  Author,
  type ConversationEvent,
  ConversationState,
  DecisionKind,
  type SendMessageResponse,
} from "../gen/loket/v1/chat_pb.js";
import { chatClient } from "../client.js";
import { type Language, pickLanguage, texts } from "./texts.js";

const params = new URLSearchParams(location.hash.slice(1));
const language: Language = pickLanguage(params.get("lang"), navigator.language);
const t = texts(language);
const widgetKey = params.get("key") ?? "";
const STORAGE = "loket.conversation";

interface Held {
  id: string;
  token: string;
}

let held: Held | null = JSON.parse(sessionStorage.getItem(STORAGE) ?? "null") as Held | null;
let lastSeq = 0n;
const chat = chatClient(() => held?.token ?? widgetKey);

const log = element("log");
const options = element("options");
const form = element("composer") as HTMLFormElement;
const input = element("text") as HTMLInputElement;
const status = element("status");
document.documentElement.lang = language;
element("title").textContent = t.title;
log.setAttribute("aria-label", t.log);
input.setAttribute("aria-label", t.input);
input.placeholder = t.input;
element("send").textContent = t.send;

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} missing`);
  return found;
}

function authorLabel(author: Author): string {
  switch (author) {
    case Author.CUSTOMER:
      return t.you;
    case Author.AGENT:
      return t.agent;
    case Author.SYSTEM:
      return t.system;
    default:
      return t.bot;
  }
}

function show(event: ConversationEvent): void {
  if (event.seq <= lastSeq) return;
  lastSeq = event.seq;
  if (event.event.case === "message") {
    const message = event.event.value;
    const item = document.createElement("li");
    item.className = `message ${Author[message.author].toLowerCase()}`;
    item.dataset.seq = String(event.seq);
    const who = document.createElement("span");
    who.className = "author";
    who.textContent = authorLabel(message.author);
    const text = document.createElement("p");
    text.textContent = message.text;
    item.append(who, text);
    log.append(item);
  } else if (event.event.case === "stateChange") {
    const change = event.event.value;
    if (change.to === ConversationState.RESOLVED) showStars();
    if (change.to === ConversationState.ENDED) {
      sessionStorage.removeItem(STORAGE);
      form.hidden = true;
    }
  }
  log.scrollTop = log.scrollHeight;
}

function button(label: string, onClick: () => void): HTMLButtonElement {
  const made = document.createElement("button");
  made.type = "button";
  made.textContent = label;
  made.addEventListener("click", onClick);
  return made;
}

function showOptions(response: SendMessageResponse): void {
  options.replaceChildren();
  const decision = response.decision;
  if (decision === undefined) return;
  if (decision.kind === DecisionKind.CLARIFY || decision.kind === DecisionKind.MENU) {
    for (const option of decision.clarifyOptions) options.append(button(option, () => void send(option)));
  } else if (decision.kind === DecisionKind.OFF_TOPIC) {
    options.append(button(t.yes, () => void send(language === "nl" ? "ja" : "yes")));
    options.append(button(t.no, () => void send(language === "nl" ? "nee" : "no")));
  }
}

function showStars(): void {
  options.replaceChildren();
  const group = document.createElement("div");
  group.className = "stars";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", t.rate);
  for (let score = 1; score <= 5; score++) {
    const star = button("★", () => void rate(score));
    star.setAttribute("aria-label", t.star(score));
    group.append(star);
  }
  options.append(group);
}

async function rate(score: number): Promise<void> {
  if (held === null) return;
  try {
    await chat.rateConversation({ conversationId: held.id, score });
    options.replaceChildren();
    status.textContent = t.thanks;
  } catch (error) {
    status.textContent = t.failed + ConnectError.from(error).rawMessage;
  }
}

async function send(text: string): Promise<void> {
  if (held === null || text.trim() === "") return;
  options.replaceChildren();
  try {
    const response = await chat.sendMessage({
      conversationId: held.id,
      text,
      clientMessageId: crypto.randomUUID(),
    });
    status.textContent = "";
    showOptions(response);
  } catch (error) {
    status.textContent = t.failed + ConnectError.from(error).rawMessage;
  }
}

/// Follows the conversation for as long as the frame lives, resuming after the last event shown.
async function watch(): Promise<void> {
  for (;;) {
    if (held === null) return;
    try {
      for await (const event of chat.watchConversation({ conversationId: held.id, afterSeq: lastSeq })) {
        status.textContent = "";
        show(event);
      }
      return;
    } catch (error) {
      const code = ConnectError.from(error).code;
      if (code === Code.Unauthenticated || code === Code.PermissionDenied || code === Code.NotFound) {
        // The token expired or the conversation is gone: start afresh.
        sessionStorage.removeItem(STORAGE);
        held = null;
        log.replaceChildren();
        lastSeq = 0n;
        await start();
        continue;
      }
      status.textContent = t.offline;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function start(): Promise<void> {
  if (held !== null) return;
  const started = await chat.startConversation({ language });
  const id = started.conversation?.conversationId ?? "";
  held = { id, token: started.conversationToken };
  sessionStorage.setItem(STORAGE, JSON.stringify(held));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  input.value = "";
  void send(text);
});

start()
  .then(watch)
  .catch((error: unknown) => {
    status.textContent = t.failed + ConnectError.from(error).rawMessage;
  });
