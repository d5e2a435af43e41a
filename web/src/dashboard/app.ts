// The service-level dashboard at /dashboard. An editor or administrator signs in with their key (kept in this tab's
// session storage, never in the address); GetQueueSnapshot tells whether the key may read KPIs. Then, for the
// chosen range and filters: GetKpis (every KPI against its target, the top lists), GetKpiSeries (the charts, per
// day or hour of the browser's time zone) and the queue per skill, which refreshes itself. A refusal is shown where
// it belongs: a bad range at the range, a bad filter at the filters, a key that may not read KPIs at the key.
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Channel, SupportTier } from "../gen/loket/v1/chat_pb.js";
import { StatsService } from "../gen/loket/v1/stats_pb.js";
import { codeOf, describe } from "../calls.js";
import { violations } from "../violations.js";
import { client as connect } from "../client.js";
import { byId } from "../dom.js";
import { Texts, pageConfig, pickLanguage } from "../texts.js";
import * as label from "../console/labels.js";
import { Figures } from "./figures.js";

const KEY = "loket.dashboard-key";
const LANGUAGE = "loket.language";
/// Why the key was refused, for the page that loads next to say at the key.
const SIGNED_OUT = "loket.dashboard-signed-out";
const DAY = 24 * 3600 * 1000;

const page = pageConfig();
const texts = new Texts(page, pickLanguage(page, sessionStorage.getItem(LANGUAGE), navigator.language));
const t = texts.t.bind(texts);
let key = sessionStorage.getItem(KEY) ?? "";
const client = connect(StatsService, () => key);
const figures = new Figures(texts);
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
texts.apply();

const notice = byId("notice");
const signIn = byId<HTMLFormElement>("sign-in");
const keyError = byId("key-error");
const rangeError = byId("range-error");
const filterError = byId("filter-error");
const since = byId<HTMLInputElement>("since");
const until = byId<HTMLInputElement>("until");

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
byId<HTMLFormElement>("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  void load();
});

/// Signs out when `error` refuses the key (not allowed to read KPIs, or no longer valid), saying why at the key;
/// whether it did.
function signedOutBy(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== Code.PermissionDenied && code !== Code.Unauthenticated) return false;
  signOut(code === Code.PermissionDenied ? t("dashboard_not_allowed") : describe(error, texts));
  return true;
}

function signOut(why: string): void {
  sessionStorage.removeItem(KEY);
  if (why !== "") sessionStorage.setItem(SIGNED_OUT, why);
  location.reload();
}

function showSignIn(why: string): void {
  key = "";
  sessionStorage.removeItem(KEY);
  signIn.hidden = false;
  keyError.textContent = why;
  byId("key").setAttribute("aria-invalid", why === "" ? "false" : "true");
  byId("key").focus();
}

/// The date input's value of `millis`, in the browser's time zone.
function dateValue(millis: number): string {
  const d = new Date(millis);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/// Local midnight at the start of a date input's day.
function midnight(value: string): number {
  const [year, month, day] = value.split("-").map(Number);
  return new Date(year, month - 1, day).getTime();
}

/// Whether the key may read KPIs, then the filters and the figures.
async function start(): Promise<void> {
  const refused = sessionStorage.getItem(SIGNED_OUT);
  sessionStorage.removeItem(SIGNED_OUT);
  if (key === "") {
    showSignIn(refused ?? "");
    return;
  }
  let skills: string[];
  try {
    skills = (await client.getQueueSnapshot({})).queues.map((q) => q.skill);
  } catch (error) {
    showSignIn(codeOf(error) === Code.PermissionDenied ? t("dashboard_not_allowed") : describe(error, texts));
    return;
  }
  sessionStorage.setItem(KEY, key);
  signIn.hidden = true;
  byId("sign-out").hidden = false;
  byId("board").hidden = false;
  const options = (id: string, entries: [string, string][]) => {
    const select = byId<HTMLSelectElement>(id);
    select.replaceChildren(new Option(t("dashboard_all"), ""));
    for (const [value, name] of entries) select.append(new Option(name, value));
  };
  const channels = [Channel.CHAT, Channel.EMAIL, Channel.SOCIAL, Channel.PHONE, Channel.MESSAGING];
  options("channel", channels.map((c) => [String(c), label.channel(texts, c)]));
  const tiers = [SupportTier.BASIC, SupportTier.STANDARD, SupportTier.ADVANCED];
  options("tier", tiers.map((tier) => [String(tier), label.tier(texts, tier)]));
  options("filter-language", Object.entries(page.languages).map(([code, l]) => [code, l.name]));
  options("skill", skills.map((s) => [s, s]));
  const today = Date.now();
  until.value = dateValue(today);
  since.value = dateValue(today - 6 * DAY);
  await load();
  followQueues();
}

/// How often the queue table asks again: the queue changes by the minute, the KPIs of a range do not.
const QUEUE_REFRESH_MS = 10_000;
let queueTimer: ReturnType<typeof setInterval> | undefined;

/// Keeps the queue per skill current while the page is in view. A refusal signs out as in `load`; a passing
/// failure waits for the next round.
function followQueues(): void {
  if (queueTimer !== undefined) return;
  queueTimer = setInterval(() => {
    if (document.visibilityState !== "visible") return;
    client.getQueueSnapshot({}).then(
      (queues) => figures.queues(queues, byId<HTMLTableElement>("queues").tBodies[0]),
      (error: unknown) => signedOutBy(error),
    );
  }, QUEUE_REFRESH_MS);
}

let loads = 0;

/// The figures of the chosen range and filters.
async function load(): Promise<void> {
  const mine = ++loads;
  for (const element of [rangeError, filterError]) element.textContent = "";
  for (const input of [since, until]) input.setAttribute("aria-invalid", "false");
  notice.textContent = t("dashboard_loading");
  const value = (id: string) => byId<HTMLSelectElement>(id).value;
  const start = midnight(since.value);
  // "Up to and including" the until day: the range ends at the next midnight.
  const end = midnight(until.value) + DAY;
  const filters = {
    startTime: timestampFromMs(start),
    endTime: timestampFromMs(end),
    channel: Number(value("channel") || 0),
    tier: Number(value("tier") || 0),
    language: value("filter-language"),
    skill: value("skill"),
  };
  const [kpis, series, queues] = await Promise.allSettled([
    client.getKpis(filters),
    client.getKpiSeries({ ...filters, granularity: Number(value("granularity")), timeZone: zone }),
    client.getQueueSnapshot({}),
  ]);
  if (mine !== loads) return;
  notice.textContent = "";
  let failed = false;
  for (const result of [kpis, series, queues]) {
    if (result.status === "fulfilled") continue;
    failed = true;
    if (signedOutBy(result.reason)) return;
    const error = ConnectError.from(result.reason);
    const field = violations(error)[0]?.field ?? "";
    if (error.code === Code.InvalidArgument && ["start_time", "end_time", "granularity", "time_zone"].includes(field)) {
      const hint = end <= start ? t("dashboard_range_backwards") : field === "start_time" ? t("dashboard_range_too_long") : "";
      rangeError.textContent = `${hint} ${describe(error, texts)}`.trim();
      for (const input of [since, until]) input.setAttribute("aria-invalid", "true");
    } else if (error.code === Code.InvalidArgument) {
      filterError.textContent = describe(error, texts);
    } else {
      notice.textContent = describe(error, texts);
    }
  }
  if (kpis.status === "fulfilled") {
    figures.kpiRows(kpis.value, byId<HTMLTableElement>("kpis").tBodies[0]);
    figures.tops(kpis.value, byId<HTMLTableElement>("intents").tBodies[0], byId<HTMLTableElement>("gaps").tBodies[0]);
    byId("range-said").textContent = t("dashboard_range_said", {
      since: label.moment(texts, kpis.value.startTime),
      until: label.moment(texts, kpis.value.endTime),
      zone,
    });
  }
  byId("charts").replaceChildren(...(series.status === "fulfilled" ? figures.charts(series.value, zone) : []));
  if (queues.status === "fulfilled") figures.queues(queues.value, byId<HTMLTableElement>("queues").tBodies[0]);
  // For the browser test: the figures of this range are drawn, and how long after the page started.
  document.body.dataset.loaded = String(mine);
  document.body.dataset.failed = String(failed);
  if (document.body.dataset.readyMs === undefined) document.body.dataset.readyMs = String(Math.round(performance.now()));
}

void start();
