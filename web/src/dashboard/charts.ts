// Small SVG charts for the dashboard's series, without a charting library: stacked bars for counts, lines for
// rates and durations, an optional dashed target line. Each chart comes with a table of the same numbers for
// screen readers (the drawing itself is hidden from them); every label is set as text, never as markup.
import { make } from "../dom.js";

/// One named series: a value per bucket, `null` where nothing was measured (a gap in a line).
export interface Series {
  name: string;
  values: (number | null)[];
}

export interface ChartSpec {
  title: string;
  /// The buckets' labels, oldest first.
  labels: string[];
  /// The table's heading of the label column.
  period: string;
  kind: "bars" | "lines";
  series: Series[];
  format: (value: number) => string;
  /// What a `null` reads as in the table.
  noData: string;
  /// The top of the scale (1 for rates); else the largest value.
  max?: number;
  target?: { value: number; label: string };
}

const WIDTH = 320;
const HEIGHT = 150;
const LEFT = 44;
const RIGHT = 6;
const TOP = 8;
const BOTTOM = 18;
const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  className = "",
): SVGElementTagNameMap[K] {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
  if (className !== "") made.setAttribute("class", className);
  return made;
}

function text(x: number, y: number, anchor: string, content: string): SVGTextElement {
  const made = svg("text", { x, y, "text-anchor": anchor });
  made.textContent = content;
  return made;
}

/// A figure with the chart, its legend and its table.
export function chart(spec: ChartSpec): HTMLElement {
  const figure = make("figure");
  figure.append(make("figcaption", "", spec.title));
  const n = spec.labels.length;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const totals = spec.labels.map((_, i) =>
    spec.kind === "bars"
      ? spec.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0)
      : Math.max(0, ...spec.series.map((s) => s.values[i] ?? 0)),
  );
  const top = spec.max ?? Math.max(spec.target?.value ?? 0, ...totals, 0);
  const scale = top > 0 ? top : 1;
  const y = (value: number) => TOP + plotHeight - (value / scale) * plotHeight;
  const step = plotWidth / Math.max(n, 1);
  const x = (i: number) => LEFT + step * i + step / 2;

  const drawing = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, "aria-hidden": "true", focusable: "false" }, "chart");
  drawing.append(svg("line", { x1: LEFT, y1: TOP + plotHeight, x2: WIDTH - RIGHT, y2: TOP + plotHeight }, "axis"));
  drawing.append(svg("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: TOP + plotHeight }, "axis"));
  drawing.append(text(LEFT - 4, TOP + 4, "end", spec.format(scale)));
  drawing.append(text(LEFT - 4, TOP + plotHeight, "end", spec.format(0)));
  // The first and the last bucket on the axis; every bucket in the tooltips and the table.
  if (n > 0) drawing.append(text(LEFT, HEIGHT - 4, "start", spec.labels[0]));
  if (n > 1) drawing.append(text(WIDTH - RIGHT, HEIGHT - 4, "end", spec.labels[n - 1]));

  // Drawn last to first, so the first series (a median before its 90th percentile) lies on top where they meet.
  [...spec.series.entries()].reverse().forEach(([s, series]) => {
    const style = `s${(s % 5) + 1}`;
    if (spec.kind === "bars") {
      series.values.forEach((value, i) => {
        if (value === null || value <= 0) return;
        const below = spec.series.slice(0, s).reduce((sum, other) => sum + (other.values[i] ?? 0), 0);
        const bar = svg(
          "rect",
          { x: x(i) - step * 0.4, y: y(below + value), width: Math.max(step * 0.8, 0.5), height: y(below) - y(below + value) },
          style,
        );
        const title = svg("title", {});
        title.textContent = `${spec.labels[i]}: ${series.name} ${spec.format(value)}`;
        bar.append(title);
        drawing.append(bar);
      });
    } else {
      let path = "";
      let pen = "M";
      series.values.forEach((value, i) => {
        if (value === null) {
          pen = "M";
          return;
        }
        path += `${pen}${x(i).toFixed(1)} ${y(value).toFixed(1)} `;
        pen = "L";
        if (n <= 62) {
          const dot = svg("circle", { cx: x(i), cy: y(value), r: 2 }, style);
          const title = svg("title", {});
          title.textContent = `${spec.labels[i]}: ${series.name} ${spec.format(value)}`;
          dot.append(title);
          drawing.append(dot);
        }
      });
      if (path !== "") drawing.append(svg("path", { d: path.trim() }, `line ${style}`));
    }
  });
  if (spec.target !== undefined) {
    const at = y(spec.target.value);
    drawing.append(svg("line", { x1: LEFT, y1: at, x2: WIDTH - RIGHT, y2: at }, "target"));
  }
  figure.append(drawing);

  const legend = make("ul", "legend");
  legend.setAttribute("aria-hidden", "true");
  spec.series.forEach((series, s) => {
    const item = make("li");
    item.append(make("span", `s${(s % 5) + 1}`), series.name);
    legend.append(item);
  });
  if (spec.target !== undefined) legend.append(make("li", "", `- - ${spec.target.label}`));
  figure.append(legend);
  figure.append(table(spec));
  return figure;
}

/// The chart's numbers as a table, read by screen readers instead of the drawing (in a box that hides it: a
/// table's own overflow is not clipped).
function table(spec: ChartSpec): HTMLElement {
  const box = make("div", "sr-only");
  const table = make("table");
  box.append(table);
  const caption = spec.target === undefined ? spec.title : `${spec.title} (${spec.target.label})`;
  table.append(make("caption", "", caption));
  const head = make("tr");
  for (const heading of [spec.period, ...spec.series.map((s) => s.name)]) {
    const cell = make("th", "", heading);
    cell.scope = "col";
    head.append(cell);
  }
  table.createTHead().append(head);
  const body = table.createTBody();
  spec.labels.forEach((label, i) => {
    const row = make("tr");
    const cell = make("th", "", label);
    cell.scope = "row";
    row.append(cell);
    for (const series of spec.series) {
      const value = series.values[i];
      row.append(make("td", "number", value === null ? spec.noData : spec.format(value)));
    }
    body.append(row);
  });
  return box;
}
