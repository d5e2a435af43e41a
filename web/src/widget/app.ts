// The chat inside the widget's iframe (served from loket's origin). It starts a conversation with the widget key
// and keeps the conversation token in this frame's session storage, so a reload picks the conversation up again
// (its transcript, and the stars if the rating question is still open). It shows the bot's replies from the
// SendMessage response as soon as it arrives and everything else (an agent's messages, state changes) from
// WatchConversation, resumed after a dropped connection. Its texts come from loket (the locale files), and
// everything anybody typed is set as text.
import { Code, type ConnectError } from "@connectrpc/connect";
import {
  ChatService,
  type ConversationEvent,
  ConversationState,
  DecisionKind,
  type SendMessageResponse,
} from "../gen/loket/v1/chat_pb.js";
import { codeOf, describe, follow } from "../calls.js";
import { client } from "../client.js";
import { button, byId, make, sendOnEnter, utf8Length } from "../dom.js";
import { Texts, pageConfig, pickLanguage } from "../texts.js";
import { Transcript, authorLabel } from "../transcript.js";

const page = pageConfig();
const params = new URLSearchParams(location.hash.slice(1));
const texts = new Texts(page, pickLanguage(page, params.get("lang"), navigator.language));
const t = texts.t.bind(texts);
const widgetKey = params.get("key") ?? "";
const STORAGE = "loket.conversation";

interface Held {
  id: string;
  token: string;
}

/// The message that could not be sent, with its client message id: sent again unchanged it keeps the id, so loket
/// stores it once even if the first attempt did arrive. While it is reported, "reconnecting" does not replace that.
let unsent: { text: string; id: string } | null = null;
let held: Held | null = JSON.parse(sessionStorage.getItem(STORAGE) ?? "null") as Held | null;
/// Where the watch resumes: the last event it delivered (or the last message shown when the page loaded).
let resumeAfter = 0n;
const chat = client(ChatService, () => held?.token ?? widgetKey);

const options = byId("options");
const form = byId<HTMLFormElement>("composer");
const input = byId<HTMLTextAreaElement>("text");
const status = byId("status");
const transcript = new Transcript(byId("log"), (message) => authorLabel(texts, message, "widget_you"));
texts.apply();
input.maxLength = page.max_message_bytes;

function forget(): void {
  sessionStorage.removeItem(STORAGE);
  held = null;
  resumeAfter = 0n;
  transcript.clear();
}

function onEvent(event: ConversationEvent): void {
  resumeAfter = event.seq;
  if (status.textContent === t("offline")) status.textContent = "";
  if (event.event.case === "message") {
    transcript.add(event.event.value);
  } else if (event.event.case === "stateChange") {
    const to = event.event.value.to;
    if (to === ConversationState.RESOLVED) showStars();
    if (to === ConversationState.ENDED) {
      sessionStorage.removeItem(STORAGE);
      form.hidden = true;
    }
  }
}

/// The bot's clarifying options as buttons that answer with the option's number, and the offer of a colleague
/// as yes and no buttons that answer with their own words (which the bot reads in this language).
function showOptions(response: SendMessageResponse): void {
  options.replaceChildren();
  const decision = response.decision;
  if (decision === undefined) return;
  if (decision.kind === DecisionKind.CLARIFY) {
    decision.clarifyOptions.forEach((id, index) => {
      const question = decision.faqMatches.find((m) => m.faqId === id)?.question;
      const label = question === undefined ? String(index + 1) : `${index + 1}. ${question}`;
      options.append(button(label, () => void send(String(index + 1))));
    });
  } else if (decision.kind === DecisionKind.OFF_TOPIC) {
    for (const key of ["widget_yes", "widget_no"] as const) options.append(button(t(key), () => void send(t(key))));
  }
}

function showStars(): void {
  options.replaceChildren();
  const group = make("div", "stars");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", t("widget_rate"));
  for (let score = 1; score <= 5; score++) {
    const star = button("★", () => void rate(score));
    star.setAttribute("aria-label", t("widget_star", { n: score }));
    group.append(star);
  }
  options.append(group);
}

async function rate(score: number): Promise<void> {
  if (held === null) return;
  try {
    await chat.rateConversation({ conversationId: held.id, score });
    options.replaceChildren();
    status.textContent = t("widget_thanks");
  } catch (error) {
    // Rated already (in another tab, or typed): the stars have nothing left to do.
    if (codeOf(error) === Code.FailedPrecondition) options.replaceChildren();
    status.textContent = describe(error, texts);
  }
}

/// Sends `text` and shows the customer's message and the bot's replies from the response. A message that could not
/// be sent goes back into the input; sent again as it is, it keeps its client message id.
async function send(text: string): Promise<void> {
  if (held === null || text.trim() === "") return;
  if (utf8Length(text) > page.max_message_bytes) {
    status.textContent = t("widget_too_long");
    if (input.value === "") input.value = text;
    return;
  }
  options.replaceChildren();
  const clientMessageId = unsent?.text === text ? unsent.id : crypto.randomUUID();
  try {
    const response = await chat.sendMessage({ conversationId: held.id, text, clientMessageId });
    unsent = null;
    status.textContent = "";
    for (const message of [response.message, ...response.replies]) if (message !== undefined) transcript.add(message);
    showOptions(response);
  } catch (error) {
    if (input.value === "") input.value = text;
    unsent = { text, id: clientMessageId };
    status.textContent = t("widget_not_sent", { reason: describe(error, texts) });
  }
}

/// Picks the conversation of this frame up again after a reload: its transcript, and the stars if the rating
/// question is still open. False when there is none to pick up (ended, expired, gone).
async function resume(): Promise<boolean> {
  if (held === null) return false;
  try {
    const conversation = await chat.getConversation({ conversationId: held.id });
    if (conversation.state === ConversationState.ENDED) return false;
    for (const message of conversation.messages) transcript.add(message);
    resumeAfter = transcript.last();
    if (conversation.awaitingRating) showStars();
    return true;
  } catch (error) {
    if (refusesConversation(codeOf(error))) {
      status.textContent = t("widget_expired");
      return false;
    }
    throw error;
  }
}

async function start(): Promise<void> {
  forget();
  const started = await chat.startConversation({ language: texts.language });
  held = { id: started.conversation?.conversationId ?? "", token: started.conversationToken };
  sessionStorage.setItem(STORAGE, JSON.stringify(held));
  if (started.greeting !== undefined) transcript.add(started.greeting);
  resumeAfter = transcript.last();
}

/// An expired or forged token, or a conversation that is gone: a new conversation is the way on.
function refusesConversation(code: Code): boolean {
  return code === Code.Unauthenticated || code === Code.PermissionDenied || code === Code.NotFound;
}

/// Follows the conversation for as long as the frame lives.
async function watch(): Promise<void> {
  for (;;) {
    if (held === null) return;
    const conversationId = held.id;
    const failure: ConnectError | undefined = await follow(
      () => chat.watchConversation({ conversationId, afterSeq: resumeAfter }),
      {
        onItem: onEvent,
        onRetry: () => {
          if (unsent === null) status.textContent = t("offline");
        },
      },
    );
    if (failure === undefined) return;
    if (!refusesConversation(failure.code)) {
      status.textContent = describe(failure, texts);
      return;
    }
    status.textContent = t("widget_expired");
    await start();
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  input.value = "";
  void send(text);
});
sendOnEnter(input, form);
// Escape closes the widget; the loader on the shop's page hides the frame and gives the launcher the focus.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && window.parent !== window) window.parent.postMessage({ loket: "close" }, "*");
});
// The loader says when the frame is opened: the input gets the focus, so the chat is used by keyboard at once.
window.addEventListener("message", (event) => {
  if (event.source === window.parent && (event.data as { loket?: string } | null)?.loket === "open") input.focus();
});
// The launcher on the shop's page is labelled in this frame's language (the loader has no texts of its own).
if (window.parent !== window) {
  const labels = { loket: "ready", title: t("widget_title"), launcher: t("widget_launcher"), close: t("widget_close") };
  window.parent.postMessage(labels, "*");
}

resume()
  .then((resumed) => (resumed ? undefined : start()))
  .then(watch)
  .catch((error: unknown) => {
    status.textContent = describe(error, texts);
  });
