// A conversation's messages as a list, shared by the widget and the agent console. Each message shows once, in
// sequence order, whichever way it arrived first (a SendMessage response, a watch stream, a package's
// transcript), so using the fastest source never doubles or reorders a message.
import { Author, type Message } from "./gen/loket/v1/chat_pb.js";
import { make } from "./dom.js";
import type { Key, Texts } from "./texts.js";

/// Who wrote `message`, as a page shows it: the customer under `customer` (the widget says "you", the console
/// "customer"), an agent by the display name their key gives them, else by role.
export function authorLabel(texts: Texts, message: Message, customer: Key): string {
  switch (message.author) {
    case Author.CUSTOMER:
      return texts.t(customer);
    case Author.AGENT:
      return message.authorName || texts.t("author_agent");
    case Author.SYSTEM:
      return texts.t("author_system");
    default:
      return texts.t("author_bot");
  }
}

export class Transcript {
  private readonly shown = new Set<bigint>();

  /// Fills `list` (an `<ol>`), labelling each message's author with `label`.
  constructor(
    private readonly list: HTMLElement,
    private readonly label: (message: Message) => string,
  ) {}

  /// Shows `message` unless it is shown already; returns whether it was new.
  add(message: Message): boolean {
    if (this.shown.has(message.seq)) return false;
    this.shown.add(message.seq);
    const item = make("li", `message ${Author[message.author].toLowerCase()}`);
    item.dataset.seq = String(message.seq);
    item.append(make("span", "author", this.label(message)), make("p", "", message.text));
    const later = [...this.list.children].find((other) => BigInt((other as HTMLElement).dataset.seq ?? 0) > message.seq);
    this.list.insertBefore(item, later ?? null);
    this.list.scrollTop = this.list.scrollHeight;
    return true;
  }

  /// The highest sequence number shown (0 when none).
  last(): bigint {
    return [...this.shown].reduce((a, b) => (b > a ? b : a), 0n);
  }

  clear(): void {
    this.shown.clear();
    this.list.replaceChildren();
  }
}
