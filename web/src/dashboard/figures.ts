// What the dashboard shows of loket's answers: the KPIs against their targets (each value cell carries the raw
// number in `data-value`, the status in `data-status`), the series as charts, the queue per skill and the top
// lists. Intents and the customers' example questions are set as text, never as markup.
import { HandoffReason } from "../gen/loket/v1/chat_pb.js";
import {
  type DurationSummary,
  Granularity,
  type Kpis,
  type KpiSeries,
  type QueueSnapshot,
  type Ratio,
  type Target,
  TargetStatus,
} from "../gen/loket/v1/stats_pb.js";
import { make } from "../dom.js";
import type { Key, Texts } from "../texts.js";
import * as label from "../console/labels.js";
import { type Series, chart } from "./charts.js";

export class Figures {
  private readonly number: Intl.NumberFormat;
  private readonly percent: Intl.NumberFormat;

  constructor(private readonly texts: Texts) {
    this.number = new Intl.NumberFormat(texts.language, { maximumFractionDigits: 2 });
    this.percent = new Intl.NumberFormat(texts.language, { style: "percent", maximumFractionDigits: 1 });
  }

  private t(key: Key, values: Record<string, string | number> = {}): string {
    return this.texts.t(key, values);
  }

  /// "42 s", "3.5 min", "2.1 h".
  duration(seconds: number): string {
    if (seconds < 120) return this.t("console_seconds", { n: this.number.format(Math.round(seconds)) });
    if (seconds < 7200) return this.t("console_minutes", { n: this.number.format(Math.round(seconds / 6) / 10) });
    return this.t("console_hours", { n: this.number.format(Math.round(seconds / 360) / 10) });
  }

  private ratio(ratio: Ratio | undefined): string {
    if (ratio === undefined || ratio.total === 0n) return this.t("dashboard_no_data");
    return `${this.percent.format(ratio.value)} (${ratio.count}/${ratio.total})`;
  }

  /// The KPI table: one row per KPI with its value, target and status.
  kpiRows(kpis: Kpis, body: HTMLTableSectionElement): void {
    const rows: [string, Key, string, number, Target | undefined, "min" | "max"][] = [];
    const count = (id: string, key: Key, value: bigint) => rows.push([id, key, String(value), Number(value), undefined, "min"]);
    const rate = (id: string, key: Key, ratio: Ratio | undefined) =>
      rows.push([id, key, this.ratio(ratio), ratio?.value ?? 0, ratio?.target, "min"]);
    const wait = (id: string, key: Key, d: DurationSummary | undefined, pick: (d: DurationSummary) => number, target?: Target) =>
      rows.push([id, key, d === undefined || d.count === 0n ? this.t("dashboard_no_data") : this.duration(pick(d)), d === undefined ? 0 : pick(d), target, "max"]);
    count("conversations", "kpi_conversations", kpis.conversations);
    count("contacts", "kpi_contacts", kpis.contacts);
    rate("deflection", "kpi_deflection", kpis.deflection);
    rate("handoff_rate", "kpi_handoff_rate", kpis.handoffRate);
    count("handoffs", "kpi_handoffs", kpis.handoffs);
    wait("median_wait", "kpi_median_wait", kpis.waitUntilClaim, (d) => d.medianSeconds, kpis.medianWaitTarget);
    wait("p90_wait", "kpi_p90_wait", kpis.waitUntilClaim, (d) => d.p90Seconds);
    count("waited_beyond_target", "kpi_waited_beyond", kpis.waitedBeyondTarget);
    count("unclaimed", "kpi_unclaimed", kpis.unclaimed);
    wait("handle_time", "kpi_handle_time", kpis.handleTime, (d) => d.medianSeconds);
    rate("resolution", "kpi_resolution", kpis.resolution);
    rate("csat", "kpi_csat", kpis.csat);
    rows.push(["mean_rating", "kpi_mean_rating", kpis.csat?.total ? `${this.number.format(kpis.meanRating)} / 5` : this.t("dashboard_no_data"), kpis.meanRating, undefined, "min"]);
    rate("rating_response", "kpi_rating_response", kpis.ratingResponse);
    rate("clarification", "kpi_clarification", kpis.clarification);
    rate("off_topic", "kpi_off_topic", kpis.offTopic);
    body.replaceChildren();
    for (const [id, key, shown, raw, target, bound] of rows) {
      const row = make("tr");
      const name = make("th", "", this.t(key));
      name.scope = "row";
      const value = make("td", "number", shown);
      value.dataset.kpi = id;
      value.dataset.value = String(raw);
      row.append(name, value);
      if (target === undefined) {
        row.append(make("td"), make("td"));
      } else {
        const goal = id === "median_wait" ? this.duration(target.goal) : this.percent.format(target.goal);
        row.append(make("td", "number", bound === "max" ? `≤ ${goal}` : `≥ ${goal}`));
        const [text, className] = {
          [TargetStatus.MET]: [this.t("dashboard_met"), "met"],
          [TargetStatus.BREACHED]: [this.t("dashboard_breached"), "breached"],
          [TargetStatus.NO_DATA]: [this.t("dashboard_no_data"), "no-data"],
          [TargetStatus.UNSPECIFIED]: ["", ""],
        }[target.status];
        const status = make("td", `status ${className}`, text);
        status.dataset.status = TargetStatus[target.status];
        value.dataset.status = TargetStatus[target.status];
        row.append(status);
      }
      body.append(row);
    }
    for (const reason of kpis.handoffsByReason) {
      const row = make("tr");
      const name = make("th", "", `${this.t("kpi_handoffs")}: ${label.reason(this.texts, reason.reason)}`);
      name.scope = "row";
      const value = make("td", "number", String(reason.count));
      value.dataset.kpi = `reason_${HandoffReason[reason.reason].toLowerCase()}`;
      value.dataset.value = String(reason.count);
      row.append(name, value, make("td"), make("td"));
      body.append(row);
    }
  }

  /// The series as charts, one per KPI.
  charts(series: KpiSeries, zone: string): HTMLElement[] {
    const buckets = series.buckets.map((b) => b.kpis).filter((k): k is Kpis => k !== undefined);
    const hourly = series.granularity === Granularity.HOUR;
    const when = new Intl.DateTimeFormat(this.texts.language, hourly
      ? { timeZone: zone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }
      : { timeZone: zone, day: "numeric", month: "short" });
    const labels = buckets.map((k) => when.format(label.millis(k.startTime)));
    const rate = (pick: (k: Kpis) => Ratio | undefined) =>
      buckets.map((k) => { const r = pick(k); return r === undefined || r.total === 0n ? null : r.value; });
    const percent = (v: number) => this.percent.format(v);
    const common = { labels, period: this.t("dashboard_period"), noData: this.t("dashboard_no_data") };
    const target = (goal: number | undefined, shown: string) => goal === undefined ? undefined : { value: goal, label: this.t("dashboard_target_line", { goal: shown }) };
    const first = buckets[0];
    const reasons = [...new Set(buckets.flatMap((k) => k.handoffsByReason.map((r) => r.reason)))].sort();
    const byReason: Series[] = reasons.map((reason) => ({
      name: label.reason(this.texts, reason),
      values: buckets.map((k) => Number(k.handoffsByReason.find((r) => r.reason === reason)?.count ?? 0n)),
    }));
    const waits = (pick: (d: DurationSummary) => number) => buckets.map((k) => (k.waitUntilClaim && k.waitUntilClaim.count > 0n ? pick(k.waitUntilClaim) : null));
    const goal = (pick: (k: Kpis) => Target | undefined) => (first === undefined ? undefined : pick(first)?.goal);
    const waitGoal = goal((k) => k.medianWaitTarget);
    const rateChart = (key: Key, pick: (k: Kpis) => Ratio | undefined) =>
      chart({ ...common, title: this.t(key), kind: "lines", series: [{ name: this.t(key), values: rate(pick) }], format: percent, max: 1,
        target: (() => { const g = goal((k) => pick(k)?.target); return target(g, g === undefined ? "" : percent(g)); })() });
    return [
      chart({ ...common, title: this.t("kpi_contacts"), kind: "bars", series: [{ name: this.t("kpi_contacts"), values: buckets.map((k) => Number(k.contacts)) }], format: (v) => this.number.format(v) }),
      rateChart("kpi_deflection", (k) => k.deflection),
      chart({ ...common, title: this.t("chart_handoffs_by_reason"), kind: "bars", series: byReason, format: (v) => this.number.format(v) }),
      chart({ ...common, title: this.t("chart_wait"), kind: "lines", series: [{ name: this.t("dashboard_median"), values: waits((d) => d.medianSeconds) }, { name: this.t("dashboard_p90"), values: waits((d) => d.p90Seconds) }], format: (v) => this.duration(v), target: target(waitGoal, waitGoal === undefined ? "" : this.duration(waitGoal)) }),
      rateChart("kpi_resolution", (k) => k.resolution),
      rateChart("kpi_csat", (k) => k.csat),
      rateChart("kpi_off_topic", (k) => k.offTopic),
    ];
  }

  /// The queue per skill.
  queues(snapshot: QueueSnapshot, body: HTMLTableSectionElement): void {
    body.replaceChildren();
    for (const queue of snapshot.queues) {
      const row = make("tr");
      row.append(make("td", "", queue.skill));
      const waiting = make("td", "number", String(queue.waiting));
      waiting.dataset.queue = queue.skill;
      waiting.dataset.value = String(queue.waiting);
      row.append(waiting, make("td", "number", queue.waiting === 0n ? "" : this.duration(queue.oldestWaitSeconds)));
      body.append(row);
    }
  }

  /// The top intents and knowledge gaps of the range.
  tops(kpis: Kpis, intents: HTMLTableSectionElement, gaps: HTMLTableSectionElement): void {
    const none = (body: HTMLTableSectionElement, columns: number) => {
      const cell = make("td", "", this.t("dashboard_none"));
      cell.colSpan = columns;
      const row = make("tr");
      row.append(cell);
      body.append(row);
    };
    intents.replaceChildren();
    for (const intent of kpis.topIntents) {
      const row = make("tr");
      row.append(make("td", "", intent.intent), make("td", "number", String(intent.count)));
      intents.append(row);
    }
    if (kpis.topIntents.length === 0) none(intents, 2);
    gaps.replaceChildren();
    for (const gap of kpis.topKnowledgeGaps) {
      const row = make("tr");
      const examples = make("td", "example");
      const list = make("ul");
      for (const example of gap.examples) list.append(make("li", "", example));
      examples.append(list);
      row.append(make("td", "", gap.intent === "" ? this.t("dashboard_no_intent") : gap.intent), make("td", "number", String(gap.count)), examples);
      gaps.append(row);
    }
    if (kpis.topKnowledgeGaps.length === 0) none(gaps, 3);
  }
}
