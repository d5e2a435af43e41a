// The knowledge editor at /editor. The editor signs in with an EDITOR (or ADMIN) key, kept in this tab's session
// storage, never in the address; a first ListFaqs says whether the key may edit. Then: the entries by category,
// searched by words and filtered by language and category (ListFaqs does both); one entry on one screen
// (entry.ts) with its revision history (history.ts); the knowledge gaps (gaps.ts); the "try it" box beside every
// screen (try.ts); and the background retrain's state in the header, polled every 2 s (GetRetrainStatus; there is
// no stream of it). Everything goes through the generated gRPC-Web client of KnowledgeService.
import { Code } from "@connectrpc/connect";
import { type Faq, type KnowledgeGap, KnowledgeService, type RetrainStatus } from "../gen/loket/v1/knowledge_pb.js";
import { codeOf, describe, retryable } from "../calls.js";
import { client as connect } from "../client.js";
import { button, byId, make } from "../dom.js";
import { Texts, pageConfig, pickLanguage } from "../texts.js";
import { EntryView } from "./entry.js";
import { GapList } from "./gaps.js";
import { History } from "./history.js";
import { TryBox } from "./try.js";

const KEY = "loket.editor-key";
const LANGUAGE = "loket.language";
const OPEN = "loket.open-faq";
/// The name changes are recorded under in the history (loket records the key's id when it is empty).
const AUTHOR = "loket.editor-author";
/// How often the retrain's state is asked for.
const RETRAIN_POLL_MS = 2000;

const page = pageConfig();
const texts = new Texts(page, pickLanguage(page, sessionStorage.getItem(LANGUAGE), navigator.language));
const t = texts.t.bind(texts);
let key = sessionStorage.getItem(KEY) ?? "";
const client = connect(KnowledgeService, () => key);

const notice = byId("notice");
const signIn = byId<HTMLFormElement>("sign-in");
texts.apply();

function say(text: string): void {
  notice.textContent = text;
}

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
  sessionStorage.setItem(AUTHOR, byId<HTMLInputElement>("author").value.trim());
  void start();
});
byId("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(OPEN);
  sessionStorage.removeItem(AUTHOR);
  location.reload();
});

/// Whether the key may edit, then the workbench. Any other key gets the sign-in form back with the reason.
async function start(): Promise<void> {
  if (key === "") {
    signIn.hidden = false;
    return;
  }
  try {
    await client.listFaqs({ pageSize: 1 });
  } catch (error) {
    const code = codeOf(error);
    if (retryable(code) && sessionStorage.getItem(KEY) === key) {
      say(describe(error, texts));
      setTimeout(() => void start(), 2000);
      return;
    }
    key = "";
    sessionStorage.removeItem(KEY);
    signIn.hidden = false;
    say(code === Code.PermissionDenied ? `${t("editor_not_editor")} (${describe(error, texts)})` : describe(error, texts));
    return;
  }
  sessionStorage.setItem(KEY, key);
  signIn.hidden = true;
  say("");
  const author = sessionStorage.getItem(AUTHOR) ?? "";
  if (author !== "") byId("who").textContent = t("console_signed_in", { name: author });
  byId("sign-out").hidden = false;
  byId("workbench").hidden = false;
  document.body.classList.add("signed-in");
  new Workbench(author).begin();
}

class Workbench {
  /// Every live entry (unfiltered), for categories, skills and the gap list's choice of entry.
  private all: Faq[] = [];
  private readonly entry: EntryView;
  private readonly history: History;
  private readonly gaps: GapList;
  private lastRetrain = "";

  constructor(author: string) {
    this.entry = new EntryView(client, texts, page, author, {
      notice: say,
      stored: (faq) => {
        sessionStorage.setItem(OPEN, faq.id);
        void this.refresh();
        void this.history.show(faq.id);
        this.pollRetrain();
      },
      changed: (faq) => void this.history.show(faq.id),
    });
    this.history = new History(client, texts);
    this.gaps = new GapList(client, texts, author, {
      notice: say,
      entries: () => this.all,
      createFrom: (gap) => this.createFrom(gap),
      attached: (faq) => {
        void this.refresh();
        this.pollRetrain();
        if (this.entry.id === faq.id) void this.open(faq.id);
      },
    });
    new TryBox(client, texts, page, (faqId) => {
      this.view("entries");
      void this.open(faqId);
    });
    const searchLanguage = byId<HTMLSelectElement>("search-language");
    for (const [code, language] of Object.entries(page.languages)) searchLanguage.append(new Option(language.name, code));
    byId<HTMLFormElement>("search").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.search();
    });
    for (const id of ["search-language", "search-category", "search-retired"]) {
      byId(id).addEventListener("change", () => void this.search());
    }
    byId("new-entry").addEventListener("click", () => {
      this.history.hide();
      sessionStorage.removeItem(OPEN);
      this.entry.create(null, this.categories(), this.skills());
      this.markOpen();
    });
    byId("tab-entries").addEventListener("click", () => this.view("entries"));
    byId("tab-gaps").addEventListener("click", () => {
      this.view("gaps");
      void this.gaps.load();
    });
  }

  begin(): void {
    // The moment the page is usable (the entries listed), for the browser test to read: User Timing, no network.
    void this.refresh().then(() => performance.mark("loket-editor-ready"));
    void this.gaps.load();
    const open = sessionStorage.getItem(OPEN);
    if (open !== null) void this.open(open);
    this.pollRetrain();
    setInterval(() => this.pollRetrain(), RETRAIN_POLL_MS);
  }

  private view(which: "entries" | "gaps"): void {
    byId("entries-view").hidden = which !== "entries";
    byId("gaps-view").hidden = which !== "gaps";
    byId("tab-entries").setAttribute("aria-pressed", String(which === "entries"));
    byId("tab-gaps").setAttribute("aria-pressed", String(which === "gaps"));
  }

  private categories(): string[] {
    return [...new Set(this.all.map((faq) => faq.category))].sort();
  }

  private skills(): string[] {
    return [...new Set(this.all.map((faq) => faq.skill))].sort();
  }

  /// Reloads every live entry (for categories and choices) and the filtered list.
  private async refresh(): Promise<void> {
    try {
      this.all = await listAll({});
    } catch (error) {
      say(describe(error, texts));
      return;
    }
    const category = byId<HTMLSelectElement>("search-category");
    const chosen = category.value;
    category.replaceChildren(category.options[0], ...this.categories().map((c) => new Option(c, c)));
    category.value = chosen;
    await this.search();
  }

  /// The entries matching the search form, grouped by category.
  private async search(): Promise<void> {
    const language = byId<HTMLSelectElement>("search-language").value;
    let found: Faq[];
    try {
      found = await listAll({
        text: byId<HTMLInputElement>("search-text").value.trim(),
        language,
        category: byId<HTMLSelectElement>("search-category").value,
        showRetired: byId<HTMLInputElement>("search-retired").checked,
      });
    } catch (error) {
      say(describe(error, texts));
      return;
    }
    const groups = new Map<string, Faq[]>();
    for (const faq of found) groups.set(faq.category, [...(groups.get(faq.category) ?? []), faq]);
    const shown = language || texts.language;
    const sections = [...groups.keys()].sort().map((category) => {
      const section = make("section", "category");
      section.append(make("h3", "", category));
      const list = make("ul");
      for (const faq of groups.get(category) ?? []) {
        const question = faq.translations[shown]?.question ?? Object.values(faq.translations)[0]?.question ?? "";
        const item = make("li", faq.retired ? "retired" : "");
        const open = button(faq.id, () => void this.open(faq.id), "link");
        open.dataset.faq = faq.id;
        item.append(open, make("span", "question", question));
        if (faq.retired) item.append(make("span", "badge", t("editor_retired")));
        list.append(item);
      }
      section.append(list);
      return section;
    });
    byId("faq-list").replaceChildren(...sections);
    byId("faq-none").hidden = found.length > 0;
    this.markOpen();
  }

  private async open(faqId: string): Promise<void> {
    try {
      const faq = await client.getFaq({ id: faqId });
      sessionStorage.setItem(OPEN, faq.id);
      this.entry.show(faq, this.categories(), this.skills());
      this.markOpen();
      await this.history.show(faq.id);
    } catch (error) {
      sessionStorage.removeItem(OPEN);
      say(describe(error, texts));
    }
  }

  private createFrom(gap: KnowledgeGap): void {
    this.view("entries");
    this.history.hide();
    sessionStorage.removeItem(OPEN);
    this.entry.create(gap, this.categories(), this.skills());
    this.markOpen();
  }

  private markOpen(): void {
    for (const open of byId("faq-list").querySelectorAll<HTMLElement>("button[data-faq]")) {
      open.setAttribute("aria-current", String(open.dataset.faq === this.entry.id));
    }
  }

  /// The retrain's state in the header, told to screen readers only when it changes.
  private pollRetrain(): void {
    void client.getRetrainStatus({}).then(
      (status) => this.showRetrain(retrainText(status)),
      (error) => this.showRetrain(describe(error, texts)),
    );
  }

  private showRetrain(text: string): void {
    if (text === this.lastRetrain) return;
    this.lastRetrain = text;
    byId("retrain").textContent = text;
  }
}

function retrainText(status: RetrainStatus): string {
  if (status.running) return t("editor_retrain_running");
  if (status.pending) return t("editor_retrain_pending");
  if (status.lastError !== "") return t("editor_retrain_failed", { error: status.lastError });
  if (status.trainedVersion === 0n) return t("editor_retrain_shipped");
  return t("editor_retrain_done", { n: String(status.trainedVersion), seconds: status.lastSeconds.toFixed(1) });
}

/// Every entry matching `filter`, page after page.
async function listAll(filter: { text?: string; language?: string; category?: string; showRetired?: boolean }) {
  const all: Faq[] = [];
  let pageToken = "";
  do {
    const page = await client.listFaqs({ ...filter, pageSize: 500, pageToken });
    all.push(...page.faqs);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return all;
}

void start();
