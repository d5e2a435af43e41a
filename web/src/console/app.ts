// The agent console at /agent. The agent signs in with their agent key (kept in this tab's session storage, never
// in the address); GetAgent says who they are and which skills they work. The queue of those skills comes live
// from WatchQueue (a snapshot, then changes; after a dropped connection a new snapshot replaces the list), with
// the page title counting the waiting and a short tone for each new hand-off. Claiming shows the whole hand-off
// (handoff.ts) or says at once that a colleague was faster. The agent's own open conversations are listed from
// ListHandoffs. The console talks to loket only through the generated gRPC-Web client.
import { Code } from "@connectrpc/connect";
import {
  type Agent,
  AgentService,
  type Handoff,
  HandoffState,
  type QueueEvent,
  QueueEventKind,
} from "../gen/loket/v1/agent_pb.js";
import { codeOf, describe, follow, retryable } from "../calls.js";
import { client as connect } from "../client.js";
import { button, byId, make } from "../dom.js";
import { Texts, pageConfig, pickLanguage } from "../texts.js";
import { HandoffView } from "./handoff.js";
import * as label from "./labels.js";

const KEY = "loket.agent-key";
const LANGUAGE = "loket.language";
const OPEN = "loket.open-handoff";
/// Why the agent was signed out, for the page that loads next to say.
const SIGNED_OUT = "loket.signed-out";

const page = pageConfig();
const texts = new Texts(page, pickLanguage(page, sessionStorage.getItem(LANGUAGE), navigator.language));
const t = texts.t.bind(texts);
let key = sessionStorage.getItem(KEY) ?? "";
const client = connect(AgentService, () => key);
const signedOut = new AbortController();

const notice = byId("notice");
const signIn = byId<HTMLFormElement>("sign-in");
const deskElement = byId("desk");
texts.apply();
const title = document.title;

function say(text: string): void {
  notice.textContent = text;
}

// The language menu: the served languages by their own names; a choice reloads the page in it (the key and the
// open hand-off are kept in this tab).
const languages = byId<HTMLSelectElement>("language");
for (const [code, language] of Object.entries(page.languages)) languages.append(new Option(language.name, code));
languages.value = texts.language;
languages.addEventListener("change", () => {
  sessionStorage.setItem(LANGUAGE, languages.value);
  location.reload();
});

signIn.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = byId<HTMLInputElement>("key");
  key = input.value.trim();
  input.value = "";
  void start();
});
byId("sign-out").addEventListener("click", () => signOut(""));

/// Back to the sign-in form, on a fresh page (no stream of the old key left), saying `why` when there is a reason.
function signOut(why: string): void {
  signedOut.abort();
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(OPEN);
  if (why !== "") sessionStorage.setItem(SIGNED_OUT, why);
  location.reload();
}

/// Who the key is, then the desk. A key that is not an agent's (or not valid) gets the sign-in form back.
async function start(): Promise<void> {
  if (key === "") {
    signIn.hidden = false;
    return;
  }
  let agent: Agent;
  try {
    agent = await client.getAgent({});
  } catch (error) {
    const code = codeOf(error);
    if (retryable(code) && sessionStorage.getItem(KEY) === key) {
      // Signed in before and loket is unreachable for now: try again rather than ask for the key.
      say(describe(error, texts));
      setTimeout(() => void start(), 2000);
      return;
    }
    key = "";
    sessionStorage.removeItem(KEY);
    signIn.hidden = false;
    say(code === Code.PermissionDenied ? t("console_not_agent") : describe(error, texts));
    return;
  }
  sessionStorage.setItem(KEY, key);
  signIn.hidden = true;
  say("");
  const name = agent.displayName === "" ? agent.agentId : `${agent.displayName} (${agent.agentId})`;
  byId("who").textContent =
    `${t("console_signed_in", { name })} · ${t("console_skills", { skills: agent.skills.join(", ") })}`;
  byId("sign-out").hidden = false;
  deskElement.hidden = false;
  document.body.classList.add("signed-in");
  new Desk(agent).begin();
}

class Desk {
  /// The waiting hand-offs, by id.
  private queue = new Map<string, Handoff>();
  /// A snapshot being received (after each (re)connect): it replaces the queue when SYNCED arrives.
  private snapshot: Map<string, Handoff> | null = null;
  private readonly view: HandoffView;

  constructor(private readonly agent: Agent) {
    this.view = new HandoffView(client, texts, agent, {
      notice: say,
      released: () => {
        sessionStorage.removeItem(OPEN);
        void this.loadMine();
      },
    });
  }

  begin(): void {
    void this.watchQueue();
    void this.loadMine();
    const open = sessionStorage.getItem(OPEN);
    if (open !== null) void this.open(open);
    // The waiting times move on.
    setInterval(() => this.tick(), 1000);
  }

  private async watchQueue(): Promise<void> {
    const failure = await follow(
      () => {
        this.snapshot = new Map();
        return client.watchQueue({ skills: this.agent.skills }, { signal: signedOut.signal });
      },
      {
        onItem: (event) => this.onQueueEvent(event),
        onRetry: () => say(t("offline")),
        signal: signedOut.signal,
      },
    );
    if (signedOut.signal.aborted) return;
    if (failure !== undefined && failure.code === Code.Unauthenticated) signOut(describe(failure, texts));
    else if (failure !== undefined) say(describe(failure, texts));
  }

  private onQueueEvent(event: QueueEvent): void {
    const handoff = event.handoff;
    switch (event.kind) {
      case QueueEventKind.SNAPSHOT:
        if (handoff === undefined) return;
        this.snapshot ??= new Map();
        this.snapshot.set(handoff.handoffId, handoff);
        return;
      case QueueEventKind.SYNCED:
        this.queue = this.snapshot ?? new Map();
        this.snapshot = null;
        if (notice.textContent === t("offline")) say("");
        break;
      case QueueEventKind.NEW:
      case QueueEventKind.TRANSFERRED:
        if (handoff === undefined) return;
        if (handoff.state === HandoffState.QUEUED && this.agent.skills.includes(handoff.skill)) {
          this.queue.set(handoff.handoffId, handoff);
          this.announce(handoff);
        } else {
          this.queue.delete(handoff.handoffId);
        }
        break;
      case QueueEventKind.CLAIMED:
      case QueueEventKind.RESOLVED:
        if (handoff === undefined) return;
        this.queue.delete(handoff.handoffId);
        if (handoff.agentId === this.agent.agentId) void this.loadMine();
        break;
      default:
        return;
    }
    this.renderQueue();
  }

  /// A new hand-off: said in the status line, counted in the title, and a short tone.
  private announce(handoff: Handoff): void {
    say(t("console_new", { question: handoff.summaryFirstAsk }));
    try {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      const volume = audio.createGain();
      volume.gain.value = 0.05;
      tone.frequency.value = 880;
      tone.connect(volume).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.15);
      tone.onended = () => void audio.close();
    } catch {
      // No sound here (a browser that has none or forbids it): the title and the status line still tell.
    }
  }

  private renderQueue(): void {
    const ordered = [...this.queue.values()].sort(
      (a, b) => b.priority - a.priority || label.millis(a.createTime) - label.millis(b.createTime),
    );
    const rows = ordered.map((handoff) => {
      const row = make("tr", handoff.callback ? "callback" : "");
      row.dataset.handoff = handoff.handoffId;
      const waiting = make("td", "waiting", label.waited(texts, label.millis(handoff.createTime)));
      waiting.dataset.since = String(label.millis(handoff.createTime));
      const claim = button(t("console_claim"), () => void this.claim(handoff.handoffId));
      claim.dataset.claim = handoff.handoffId;
      claim.setAttribute("aria-label", `${t("console_claim")}: ${handoff.summaryFirstAsk}`);
      const action = make("td");
      action.append(claim);
      row.append(
        make("td", "", String(handoff.priority)),
        waiting,
        make("td", "", label.reason(texts, handoff.reason)),
        make("td", "", handoff.language),
        make("td", "", label.channel(texts, handoff.channel)),
        make("td", "", label.tier(texts, handoff.tier)),
        make("td", "", handoff.skill),
        make("td", "question", handoff.summaryFirstAsk),
        action,
      );
      return row;
    });
    byId("queue").querySelector("tbody")?.replaceChildren(...rows);
    byId("queue-empty").hidden = rows.length > 0;
    byId("queue-count").textContent = `(${rows.length})`;
    document.title = rows.length > 0 ? `(${rows.length}) ${title}` : title;
  }

  private tick(): void {
    for (const cell of document.querySelectorAll<HTMLElement>("td.waiting")) {
      cell.textContent = label.waited(texts, Number(cell.dataset.since));
    }
  }

  private async claim(handoffId: string): Promise<void> {
    try {
      const handoff = await client.claimHandoff({ handoffId });
      this.queue.delete(handoffId);
      this.renderQueue();
      say(t("console_claimed"));
      this.show(handoff);
      void this.loadMine();
    } catch (error) {
      // Another agent's claim committed first: say so at once, and the hand-off is not waiting any more.
      if (codeOf(error) === Code.FailedPrecondition) {
        say(`${t("console_claim_lost")} (${describe(error, texts)})`);
        this.queue.delete(handoffId);
        this.renderQueue();
      } else {
        say(describe(error, texts));
      }
    }
  }

  private show(handoff: Handoff): void {
    sessionStorage.setItem(OPEN, handoff.handoffId);
    this.view.show(handoff);
    this.markOpen();
  }

  private async open(handoffId: string): Promise<void> {
    try {
      const handoff = await client.getHandoff({ handoffId });
      if (handoff.state !== HandoffState.CLAIMED || handoff.agentId !== this.agent.agentId) {
        sessionStorage.removeItem(OPEN);
        say(t("console_gone"));
        return;
      }
      this.show(handoff);
    } catch (error) {
      sessionStorage.removeItem(OPEN);
      say(describe(error, texts));
    }
  }

  /// The agent's open conversations: claimed hand-offs of their skills that they hold.
  private async loadMine(): Promise<void> {
    const mine: Handoff[] = [];
    try {
      let pageToken = "";
      do {
        const listed = await client.listHandoffs({ state: HandoffState.CLAIMED, pageSize: 500, pageToken });
        mine.push(...listed.handoffs.filter((h) => h.agentId === this.agent.agentId));
        pageToken = listed.nextPageToken;
      } while (pageToken !== "");
    } catch (error) {
      say(describe(error, texts));
      return;
    }
    const items = mine.map((handoff) => {
      const item = make("li");
      item.dataset.handoff = handoff.handoffId;
      item.append(make("p", "", `${handoff.customerId} · ${handoff.skill}`), make("p", "", handoff.summaryFirstAsk));
      const open = button(t("console_open"), () => void this.open(handoff.handoffId), "secondary");
      open.setAttribute("aria-label", `${t("console_open")}: ${handoff.summaryFirstAsk}`);
      item.append(open);
      return item;
    });
    byId("mine").replaceChildren(...items);
    byId("mine-empty").hidden = items.length > 0;
    this.markOpen();
  }

  private markOpen(): void {
    for (const item of byId("mine").querySelectorAll<HTMLElement>("li")) {
      item.setAttribute("aria-current", String(item.dataset.handoff === this.view.id));
    }
  }
}

say(sessionStorage.getItem(SIGNED_OUT) ?? "");
sessionStorage.removeItem(SIGNED_OUT);
void start();
