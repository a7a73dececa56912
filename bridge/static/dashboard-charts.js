// rtbridge dashboard charts: plain SVG drawn here, no library, no build step.
//
// Why our own: the dashboard needs four kinds of small chart (a line, bars, stacked bars, a
// histogram with two marks) and a timeline; with SVG that is a couple of hundred lines we can
// read, under the page's strict Content-Security-Policy (no inline styles: colours are SVG
// attributes), with nothing to vendor, licence or keep up to date.
//
// Each series is drawn as ONE <path> whose "d" is rebuilt on update, so a chart of 360 buckets
// costs a handful of DOM nodes, whatever the traffic.
"use strict";

window.rtbCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 360;
  const H = 130;
  const M = { left: 34, right: 8, top: 8, bottom: 18 };

  function svgEl(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function clock(epoch) {
    const d = new Date(epoch * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  // A chart's frame: axes, grid lines and labels over [x0, x1] x [0, ymax].
  function frame(container, title) {
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" }, container);
    svgEl("title", {}, svg).textContent = title;
    const grid = svgEl("g", { class: "grid" }, svg);
    const plot = svgEl("g", { class: "plot" }, svg);
    const marks = svgEl("g", { class: "marks" }, svg);
    const empty = svgEl("text", { x: W / 2, y: H / 2, class: "no-data", "text-anchor": "middle" }, svg);
    empty.textContent = "no data";
    return { svg, grid, plot, marks, empty };
  }

  const px = (x, x0, x1) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (y, ymax) => H - M.bottom - (y / (ymax || 1)) * (H - M.top - M.bottom);

  function axes(f, x0, x1, ymax, { xTicks, yFmt }) {
    f.grid.textContent = "";
    for (const frac of [0, 0.5, 1]) {
      const y = py(frac * ymax, ymax);
      svgEl("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: "gridline" }, f.grid);
      svgEl("text", { x: M.left - 4, y: y + 3, "text-anchor": "end", class: "tick" }, f.grid).textContent =
        yFmt(frac * ymax);
    }
    for (const [x, label] of xTicks) {
      const X = px(x, x0, x1);
      svgEl("line", { x1: X, x2: X, y1: M.top, y2: H - M.bottom, class: "gridline v" }, f.grid);
      svgEl("text", { x: X, y: H - 5, "text-anchor": "middle", class: "tick" }, f.grid).textContent = label;
    }
  }

  // Clock-time ticks between x0 and x1, at most six, on round minutes.
  function timeTicks(x0, x1) {
    const step = [60, 120, 300, 600, 900, 1800].find((s) => (x1 - x0) / s <= 6) || 3600;
    const out = [];
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) out.push([t, clock(t)]);
    return out;
  }

  const num = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1));

  // A step line over time buckets of `width` seconds (gaps where a value is null), e.g. the
  // most live calls, the set-up success rate: each bucket is a flat step, one alone shows too.
  function lineChart(container, { title, color, yMax, yFmt, width }) {
    const f = frame(container, title);
    const area = svgEl("path", { class: "area", fill: color, "fill-opacity": 0.12, stroke: "none" }, f.plot);
    const path = svgEl("path", { class: "line", stroke: color, fill: "none" }, f.plot);
    return {
      svg: f.svg,
      update(points, x0, x1) {
        const have = points.filter((p) => p.v !== null && p.v !== undefined);
        f.empty.setAttribute("visibility", have.length ? "hidden" : "visible");
        const ymax = yMax || niceMax(Math.max(1, ...have.map((p) => p.v)));
        axes(f, x0, x1, ymax, { xTicks: timeTicks(x0, x1), yFmt: yFmt || num });
        const base = py(0, ymax).toFixed(1);
        let d = "";
        let a = "";
        let end = null; // where the open run ends (x), null: no run open
        let start = null;
        for (const p of points) {
          const A = px(p.t, x0, x1).toFixed(1);
          const B = px(p.t + width, x0, x1).toFixed(1);
          if (p.v === null || p.v === undefined) {
            if (end !== null) a += `V${base}H${start}Z`;
            end = null;
            continue;
          }
          const Y = py(p.v, ymax).toFixed(1);
          if (end === null || end !== A) {
            if (end !== null) a += `V${base}H${start}Z`;
            d += `M${A},${Y}H${B}`;
            a += `M${A},${base}V${Y}H${B}`;
            start = A;
          } else {
            d += `V${Y}H${B}`;
            a += `V${Y}H${B}`;
          }
          end = B;
        }
        if (end !== null) a += `V${base}H${start}Z`;
        path.setAttribute("d", d);
        area.setAttribute("d", a);
      },
    };
  }

  // Stacked bars over time: points [{t, values: [..]}], one colour per stacked series.
  function barChart(container, { title, colors, width }) {
    const f = frame(container, title);
    const paths = colors.map((c) => svgEl("path", { fill: c, class: "bars" }, f.plot));
    return {
      svg: f.svg,
      update(points, x0, x1) {
        let top = 0;
        for (const p of points) top = Math.max(top, p.values.reduce((s, v) => s + v, 0));
        f.empty.setAttribute("visibility", top > 0 ? "hidden" : "visible");
        const ymax = niceMax(Math.max(1, top));
        axes(f, x0, x1, ymax, { xTicks: timeTicks(x0, x1), yFmt: num });
        const bw = Math.max(0.6, px(x0 + width, x0, x1) - px(x0, x0, x1) - 0.3);
        const ds = colors.map(() => []);
        for (const p of points) {
          let base = 0;
          const X = px(p.t, x0, x1).toFixed(1);
          p.values.forEach((v, i) => {
            if (!(v > 0)) return;
            const y0 = py(base, ymax);
            const y1 = py(base + v, ymax);
            ds[i].push(`M${X},${y0.toFixed(1)}V${y1.toFixed(1)}h${bw.toFixed(2)}V${y0.toFixed(1)}Z`);
            base += v;
          });
        }
        ds.forEach((d, i) => paths[i].setAttribute("d", d.join("")));
      },
    };
  }

  // A histogram over bins with upper edges `edges` (the last bin open-ended), with marks.
  function histogram(container, { title, color, xFmt }) {
    const f = frame(container, title);
    const bars = svgEl("path", { fill: color, class: "bars" }, f.plot);
    return {
      svg: f.svg,
      update(counts, edges, marks) {
        const total = counts.reduce((s, v) => s + v, 0);
        f.empty.setAttribute("visibility", total > 0 ? "hidden" : "visible");
        const n = counts.length;
        const top = niceMax(Math.max(1, ...counts));
        const ticks = [];
        for (let i = 0; i < n; i += Math.ceil(n / 6)) ticks.push([i, i === 0 ? "0" : xFmt(edges[i - 1])]);
        ticks.push([n, "∞"]);
        axes(f, 0, n, top, { xTicks: ticks, yFmt: num });
        let d = "";
        const bw = px(1, 0, n) - px(0, 0, n) - 1;
        counts.forEach((c, i) => {
          if (!c) return;
          const X = px(i, 0, n).toFixed(1);
          d += `M${X},${py(0, top)}V${py(c, top).toFixed(1)}h${bw.toFixed(2)}V${py(0, top)}Z`;
        });
        bars.setAttribute("d", d);
        f.marks.textContent = "";
        for (const m of marks) {
          if (m.at === null) continue;
          const X = px(m.at, 0, n);
          svgEl("line", { x1: X, x2: X, y1: M.top, y2: H - M.bottom, class: "mark " + m.cls }, f.marks);
          svgEl("text", { x: X + 2, y: M.top + 8, class: "mark-label " + m.cls }, f.marks).textContent = m.label;
        }
      },
    };
  }

  // The value below which a fraction q of a binned distribution lies, as a fractional bin
  // position (for marks) and in the bins' unit (for labels), interpolated inside its bin.
  function quantile(counts, edges, q) {
    const total = counts.reduce((s, v) => s + v, 0);
    if (!total) return null;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      if (seen + counts[i] >= q * total && counts[i] > 0) {
        const frac = (q * total - seen) / counts[i];
        const lo = i === 0 ? 0 : edges[i - 1];
        const hi = i < edges.length ? edges[i] : lo; // the open bin: its lower edge
        return { pos: i + frac, value: lo + frac * (hi - lo) };
      }
      seen += counts[i];
    }
    return null;
  }

  return { svgEl, niceMax, clock, lineChart, barChart, histogram, quantile };
})();
