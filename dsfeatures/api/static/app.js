// dsfeatures catalog page. Plain JavaScript, no build step, no third-party code.
// Views are named by the URL hash: "#/?q=..." (search) and "#/groups/NAME?version=N".
// Every value from the daemon is put in the page as text (never as HTML).
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const LANES = ["batch", "stream", "sdk"];
  const WINDOWS = [
    [3600, "1 hour"],
    [21600, "6 hours"],
    [86400, "1 day"],
    [172800, "2 days"],
  ];
  const PAGE = 50;
  const MAX_LIMIT = 500;
  let token = localStorage.getItem("dsf-token") || "";
  let searchSeq = 0;
  let groupSeq = 0;

  // --- DOM helpers ----------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  const view = () => document.getElementById("view");

  function show(...nodes) {
    const v = view();
    v.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  }

  // --- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
      this.requestId = body && body.request_id;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(path, { headers });
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (resp.status === 401 || resp.status === 403) askToken();
    if (!resp.ok) throw new ApiError(resp.status, body);
    return body;
  }

  function askToken() {
    const form = document.getElementById("auth");
    form.hidden = false;
    document.getElementById("token").focus();
  }

  function errorBox(err) {
    const rid = err.requestId ? ` (request id ${err.requestId})` : "";
    return h("div", { class: "error", role: "alert", "data-testid": "error" }, `${err.message}${rid}`);
  }

  // --- formatting -----------------------------------------------------------------------

  function ago(iso) {
    if (!iso) return "";
    const secs = (Date.now() - Date.parse(iso)) / 1000;
    if (!isFinite(secs)) return "";
    const abs = Math.abs(secs);
    const unit =
      abs < 90 ? [Math.round(abs), "s"] :
      abs < 5400 ? [Math.round(abs / 60), "min"] :
      abs < 129600 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
    return secs >= 0 ? `${unit[0]} ${unit[1]} ago` : `in ${unit[0]} ${unit[1]}`;
  }

  function when(iso) {
    if (!iso) return h("span", { class: "muted" }, "—");
    const text = iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
    return h("span", { title: iso }, text, " ", h("span", { class: "muted small" }, `(${ago(iso)})`));
  }

  function duration(seconds) {
    if (!seconds) return "none (values never expire)";
    const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (const [n, name] of units) {
      if (seconds % n === 0) {
        const k = seconds / n;
        return `${k} ${name}${k === 1 ? "" : "s"} (${seconds} s)`;
      }
    }
    return `${seconds} s`;
  }

  function valueText(v) {
    if (v === null || v === undefined) return "";
    return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v);
  }

  function utcTime(ms) {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
  }

  function laneClass(lane) {
    return LANES.includes(lane) ? `lane-${lane}` : "lane-other";
  }

  // --- routing --------------------------------------------------------------------------

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?", 2);
    const params = new URLSearchParams(query || "");
    const m = path.match(/^\/groups\/([^/]+)$/);
    if (m) return { view: "group", name: decodeURIComponent(m[1]), params };
    return { view: "search", params };
  }

  function searchHash(params) {
    const p = new URLSearchParams();
    for (const k of ["q", "entity_type", "owner", "tag"]) {
      const v = params.get(k);
      if (v) p.set(k, v);
    }
    const qs = p.toString();
    return qs ? `#/?${qs}` : "#/";
  }

  function groupHash(name, version) {
    const base = `#/groups/${encodeURIComponent(name)}`;
    return version ? `${base}?version=${version}` : base;
  }

  function route() {
    const r = parseHash();
    if (r.view === "group") {
      renderGroup(r.name, r.params);
    } else {
      const q = document.getElementById("q");
      if (document.activeElement !== q) q.value = r.params.get("q") || "";
      renderSearch(r.params, PAGE);
    }
  }

  // --- search ---------------------------------------------------------------------------

  function facetSelect(name, label, facets, current, params) {
    const sel = h(
      "select",
      {
        "aria-label": label,
        "data-testid": `filter-${name}`,
        onchange: (e) => {
          const p = new URLSearchParams(params);
          if (e.target.value) p.set(name, e.target.value);
          else p.delete(name);
          location.hash = searchHash(p);
        },
      },
      h("option", { value: "" }, `${label}: any`),
    );
    const values = facets.map((f) => f.value);
    if (current && !values.includes(current)) facets = [{ value: current, count: 0 }, ...facets];
    for (const f of facets) {
      sel.append(h("option", { value: f.value, selected: f.value === current }, `${f.value} (${f.count})`));
    }
    return sel;
  }

  function hitItem(g) {
    const retired = g.latest_active === null || g.latest_active === undefined;
    return h(
      "li",
      { class: "hit", "data-testid": "hit", "data-name": g.name },
      h(
        "div",
        { class: "hit-title" },
        h("a", { class: "hit-name", href: groupHash(g.name) }, g.name),
        h("span", { class: "badge entity", title: "entity type" }, g.entity_type),
        g.kind === "embedding" ? h("span", { class: "badge" }, "embedding") : null,
        retired ? h("span", { class: "badge retired" }, "all versions retired") : null,
        (g.tags || []).map((t) => h("span", { class: "badge tag" }, t)),
      ),
      g.description ? h("div", { class: "hit-desc" }, g.description) : null,
      h(
        "div",
        { class: "hit-meta" },
        h("span", {}, `owner ${g.owner}`),
        h("span", {}, `tier ${g.tier}`),
        h("span", {}, `${g.features} feature${g.features === 1 ? "" : "s"}`),
        h("span", {}, retired ? `versions ${g.versions.join(", ")}` : `v${g.latest_active}` +
          (g.versions.length > 1 ? ` of ${g.versions.length} versions` : "")),
        g.matched && g.matched.length
          ? h("span", { class: "matched" }, "matching features: ",
            g.matched.map((f, i) => [i ? ", " : "", h("code", {}, f)]))
          : null,
      ),
    );
  }

  async function renderSearch(params, limit) {
    const seq = ++searchSeq;
    const api_params = new URLSearchParams();
    for (const k of ["q", "entity_type", "owner", "tag"]) {
      const v = params.get(k);
      if (v) api_params.set(k, v);
    }
    api_params.set("limit", String(limit));
    let data;
    try {
      data = await api(`/v1/catalog/search?${api_params}`);
    } catch (err) {
      if (seq === searchSeq) show(errorBox(err));
      return;
    }
    if (seq !== searchSeq || parseHash().view !== "search") return;
    document.title = params.get("q") ? `${params.get("q")} · dsfeatures catalog` : "dsfeatures catalog";
    const filters = h(
      "div",
      { class: "filters" },
      facetSelect("entity_type", "Entity type", data.entity_types, params.get("entity_type"), params),
      facetSelect("owner", "Owner", data.owners, params.get("owner"), params),
      facetSelect("tag", "Tag", data.tags, params.get("tag"), params),
      h(
        "span",
        { class: "count", "data-testid": "count" },
        `${data.total} of ${data.groups_in_catalog} groups`,
      ),
    );
    const list = h("ul", { class: "hits", "data-testid": "hits" }, data.groups.map(hitItem));
    const empty = data.total
      ? null
      : h("p", { class: "muted", "data-testid": "no-hits" },
        "No feature group matches. Before building a new one, try fewer words, or a feature name.");
    const left = data.total - data.groups.length;
    let more = null;
    if (left > 0 && limit < MAX_LIMIT) {
      more = h("div", { class: "more" },
        h("button", { type: "button", "data-testid": "more", onclick: () => renderSearch(params, Math.min(limit + PAGE, MAX_LIMIT)) },
          `Show more (${left} left)`));
    } else if (left > 0) {
      more = h("p", { class: "muted" }, `Showing the first ${data.groups.length}: add words or filters to narrow the search.`);
    }
    show(filters, list, empty, more);
  }

  // --- group page -----------------------------------------------------------------------

  function metaItem(label, ...value) {
    return h("div", {}, h("dt", {}, label), h("dd", {}, ...value));
  }

  function carryoverText(c) {
    if (!c) return h("span", { class: "muted" }, "none");
    return `keep serving the last batch value for up to ${c.max_days} day${c.max_days === 1 ? "" : "s"} without a new row, then EXPIRED`;
  }

  function rollupText(r) {
    if (!r) return h("span", { class: "muted" }, "none");
    const aggs = Object.entries(r.aggregations || {});
    return [
      `${r.source_period} → ${r.target_period}`,
      aggs.length ? h("div", { class: "small" }, aggs.map(([f, a], i) => [i ? ", " : "", h("code", {}, f), ` ${a}`])) : null,
    ];
  }

  function schemaTable(features) {
    return h(
      "table",
      { "data-testid": "schema" },
      h("thead", {}, h("tr", {}, h("th", {}, "Feature"), h("th", {}, "Type"), h("th", {}, "Default"), h("th", {}, "Description"))),
      h(
        "tbody",
        {},
        features.map((f) => {
          let type = f.type;
          if (f.type === "vector") type = `vector[${f.dimension}] (${f.metric})`;
          return h(
            "tr",
            { "data-feature": f.name },
            h("td", {}, h("code", {}, f.name)),
            h("td", {}, type),
            h("td", {}, f.default === undefined || f.default === null ? h("span", { class: "muted" }, "—") : h("code", {}, valueText(f.default))),
            h("td", {}, f.description || ""),
          );
        }),
      ),
    );
  }

  function versionsTable(g) {
    return h(
      "table",
      { "data-testid": "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Status", "Created", "Last written", "Features", "Fingerprint"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        g.versions
          .slice()
          .reverse()
          .map((v) => {
            const status = v.retired
              ? h("span", { class: "badge retired" }, "retired", v.retired_at ? ` ${v.retired_at.slice(0, 10)}` : "")
              : v.version === g.latest_active
                ? h("span", { class: "badge active" }, "current")
                : h("span", { class: "badge" }, "active");
            return h(
              "tr",
              { class: [v.retired ? "retired" : "", v.version === g.version ? "shown" : ""].join(" ").trim(), "data-version": v.version },
              h("td", {}, h("a", { href: groupHash(g.name, v.version) }, `v${v.version}`)),
              h("td", {}, status),
              h("td", {}, when(v.created_at)),
              h("td", {}, when(v.last_written_at)),
              h("td", {}, String(v.features)),
              h("td", {}, h("code", { title: v.fingerprint }, v.fingerprint.slice(0, 12))),
            );
          }),
      ),
    );
  }

  function clip(text, n) {
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  function lineageGraph(g) {
    const lin = g.lineage;
    const cols = [];
    // Source tables and upstream groups both feed this group: one column of inputs.
    const inputs = [
      ...lin.sources.map((t) => ({ text: t, kind: "table" })),
      ...lin.upstream.map((u) => ({ text: u.name, kind: u.registered ? "group" : "missing", link: u.registered })),
    ];
    if (inputs.length) cols.push({ label: "inputs (tables, groups)", nodes: inputs });
    const selfCol = cols.length;
    cols.push({ label: "this group", nodes: [{ text: g.name, kind: "self" }] });
    if (lin.downstream.length) cols.push({ label: "downstream groups", nodes: lin.downstream.map((d) => ({ text: d.name, kind: "group", link: true })) });
    if (cols.length === 1) {
      return h("p", { class: "muted", "data-testid": "lineage" }, "No lineage declared (no source tables, no upstream or downstream groups).");
    }
    const W = 180, H = 34, GAP = 70, VGAP = 12, TOP = 22;
    const rows = Math.max(...cols.map((c) => c.nodes.length));
    const height = TOP + rows * (H + VGAP) + 4;
    const width = cols.length * W + (cols.length - 1) * GAP + 2;
    const svg = s("svg", { class: "lineage-svg", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "lineage graph", "data-testid": "lineage" });
    svg.style.maxWidth = `${width}px`;
    const pos = cols.map((c, ci) => {
      const x = 1 + ci * (W + GAP);
      const offset = ((rows - c.nodes.length) * (H + VGAP)) / 2;
      return c.nodes.map((_, ni) => ({ x, y: TOP + offset + ni * (H + VGAP) }));
    });
    const edge = (a, b) => {
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}` }));
      svg.append(s("path", { d: `M${x2 - 7},${y2 - 4} L${x2},${y2} L${x2 - 7},${y2 + 4} Z`, fill: "#98a2b3" }));
    };
    const self = pos[selfCol][0];
    for (let ci = 0; ci < selfCol; ci++) for (const p of pos[ci]) edge(p, self);
    for (let ci = selfCol + 1; ci < cols.length; ci++) for (const p of pos[ci]) edge(self, p);
    cols.forEach((c, ci) => {
      svg.append(s("text", { class: "col-label", x: pos[ci][0].x, y: 12 }, c.label));
      c.nodes.forEach((n, ni) => {
        const p = pos[ci][ni];
        const kind = n.kind === "table" ? "table" : n.kind === "self" ? `group · v${g.version}` : n.kind === "missing" ? "not registered" : "group";
        const node = s(
          "g",
          { class: `node ${n.kind}`, "data-node": n.text },
          s("title", {}, n.text),
          s("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6 }),
          s("text", { class: "kind", x: p.x + 9, y: p.y + 12 }, kind),
          s("text", { x: p.x + 9, y: p.y + 27 }, clip(n.text, 26)),
        );
        if (n.link) {
          const a = s("a", { href: groupHash(n.text) });
          a.append(node);
          svg.append(a);
        } else {
          svg.append(node);
        }
      });
    });
    return svg;
  }

  function freshnessTable(f) {
    if (!f.lanes.length) {
      return h("p", { class: "muted", "data-testid": "freshness" }, `No rows written to v${f.version} yet.`);
    }
    return h(
      "table",
      { "data-testid": "freshness" },
      h("thead", {}, h("tr", {}, ["Lane", "Latest event time", "Latest written at", "Rows written"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        f.lanes.map((l) =>
          h(
            "tr",
            { "data-lane": l.lane },
            h("td", {}, h("span", { class: `swatch ${laneClass(l.lane)}` }), l.lane),
            h("td", {}, when(l.latest_event_time)),
            h("td", {}, when(l.latest_written_at)),
            h("td", {}, l.rows.toLocaleString("en-US")),
          ),
        ),
      ),
    );
  }

  function volumeChart(f) {
    const W = 720, H = 170, L = 44, R = 8, T = 10, B = 22;
    const n = f.window_seconds / f.step_seconds;
    const totals = new Array(n).fill(0);
    for (const series of f.volume) series.rows.forEach((v, i) => { totals[i] += v; });
    const max = Math.max(1, ...totals);
    const start = Date.parse(f.start);
    const bw = (W - L - R) / n;
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "rows written over time", "data-testid": "volume-chart" });
    svg.append(s("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.append(s("text", { class: "label", x: L - 6, y: T + 8, "text-anchor": "end" }, String(max)));
    svg.append(s("text", { class: "label", x: L - 6, y: H - B, "text-anchor": "end" }, "0"));
    for (const i of [0, Math.floor(n / 2), n]) {
      const x = L + i * bw;
      svg.append(s("text", { class: "label", x, y: H - 6, "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" },
        `${utcTime(start + i * f.step_seconds * 1000)} UTC`));
    }
    const base = new Array(n).fill(0);
    const ordered = f.volume.slice().sort((a, b) => LANES.indexOf(a.lane) - LANES.indexOf(b.lane));
    for (const series of ordered) {
      series.rows.forEach((v, i) => {
        if (!v) return;
        const hgt = ((H - B - T) * v) / max;
        const y = H - B - ((H - B - T) * base[i]) / max - hgt;
        base[i] += v;
        const from = utcTime(start + i * f.step_seconds * 1000);
        svg.append(
          s("rect", { class: laneClass(series.lane), x: L + i * bw + 0.5, y, width: Math.max(1, bw - 1), height: Math.max(0.5, hgt), "data-lane": series.lane },
            s("title", {}, `${from} UTC, ${series.lane}: ${v} rows`)),
        );
      });
    }
    const total = totals.reduce((a, b) => a + b, 0);
    return [
      svg,
      h("div", { class: "legend" },
        ordered.map((series) => h("span", {}, h("span", { class: `swatch ${laneClass(series.lane)}` }), series.lane)),
        h("span", { "data-testid": "volume-total" }, `${total.toLocaleString("en-US")} rows in the window, ${f.step_seconds / 60} min per bar`)),
    ];
  }

  function snippetPanel(sn) {
    const langs = [["python", "Python"], ["go", "Go"], ["curl", "curl"]];
    let current = "python";
    const pre = h("pre", { class: "snippet" });
    const copied = h("span", { class: "copied", hidden: true }, "Copied");
    const buttons = {};
    const select = (lang) => {
      current = lang;
      pre.replaceChildren(h("code", { "data-testid": `snippet-${lang}` }, sn[lang]));
      pre.setAttribute("data-lang", lang);
      for (const [k, b] of Object.entries(buttons)) b.classList.toggle("active", k === lang);
      copied.hidden = true;
    };
    const copy = async () => {
      const text = sn[current];
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand("copy");
      }
      copied.hidden = false;
    };
    const tabs = h("div", { class: "tabs", role: "tablist" },
      langs.map(([k, label]) => {
        buttons[k] = h("button", { type: "button", role: "tab", "data-testid": `tab-${k}`, onclick: () => select(k) }, label);
        return buttons[k];
      }),
      h("span", { class: "spacer" }),
      copied,
      h("button", { type: "button", "data-testid": "copy", onclick: copy }, "Copy"));
    select(current);
    return [tabs, pre];
  }

  async function renderGroup(name, params) {
    const seq = ++groupSeq;
    const version = params.get("version");
    const win = params.get("window") || "3600";
    const qs = new URLSearchParams({ window: win });
    if (version) qs.set("version", version);
    let g;
    try {
      g = await api(`/v1/catalog/groups/${encodeURIComponent(name)}?${qs}`);
    } catch (err) {
      if (seq === groupSeq) show(h("a", { class: "back", href: "#/" }, "← all groups"), errorBox(err));
      return;
    }
    if (seq !== groupSeq) return;
    document.title = `${g.name} · dsfeatures catalog`;
    const versionSelect = h(
      "select",
      {
        "aria-label": "version",
        "data-testid": "version-select",
        onchange: (e) => { location.hash = groupHash(g.name, e.target.value); },
      },
      g.versions.slice().reverse().map((v) =>
        h("option", { value: v.version, selected: v.version === g.version },
          `v${v.version}${v.retired ? " (retired)" : v.version === g.latest_active ? " (current)" : ""}`)),
    );
    const head = h(
      "div",
      { class: "group-head" },
      h("h1", { "data-testid": "group-name" }, g.name),
      versionSelect,
      g.retired ? h("span", { class: "badge retired" }, "retired: not readable") : h("span", { class: "badge active" }, g.version === g.latest_active ? "current" : "active"),
      h("span", { class: "badge entity" }, g.entity_type),
      h("span", { class: "badge" }, g.kind),
      h("span", { class: "badge" }, `tier ${g.tier}`),
      (g.tags || []).map((t) => h("a", { class: "badge tag", href: searchHash(new URLSearchParams({ tag: t })) }, t)),
    );
    const owner = [g.owner.team, g.owner.contact ? [" · ", h("a", { href: `mailto:${g.owner.contact}` }, g.owner.contact)] : null];
    const meta = h(
      "dl",
      { class: "meta", "data-testid": "meta" },
      metaItem("Owner", owner),
      metaItem("Entity type (join key)", g.entity_type, g.join_key !== g.entity_type ? ` (${g.join_key})` : ""),
      metaItem("TTL", duration(g.ttl_seconds)),
      metaItem("Carryover", carryoverText(g.carryover)),
      metaItem("Rollup", rollupText(g.rollup)),
      metaItem("SQL fingerprint", g.lineage.sql_fingerprint ? h("code", {}, g.lineage.sql_fingerprint) : h("span", { class: "muted" }, "—")),
    );
    const dupes = g.similar.length
      ? h("section", { class: "panel dupes", "data-testid": "similar" },
        h("h2", {}, "Possible duplicates: check these before building another"),
        h("ul", {}, g.similar.map((d) => h("li", {},
          h("a", { href: groupHash(d.name) }, d.name), " ",
          h("span", { class: "badge entity" }, d.entity_type), " ",
          h("span", { class: "muted" }, d.reason)))))
      : null;
    const windowButtons = h("div", { class: "chart-head" },
      h("strong", {}, "Rows written"),
      WINDOWS.map(([secs, label]) => h("button", {
        type: "button",
        class: String(secs) === String(g.freshness.window_seconds) ? "active" : "",
        "data-testid": `window-${secs}`,
        onclick: () => {
          const p = new URLSearchParams({ window: String(secs) });
          if (version) p.set("version", version);
          location.hash = `#/groups/${encodeURIComponent(g.name)}?${p}`;
        },
      }, label)));
    show(
      h("a", { class: "back", href: "#/" }, "← all groups"),
      head,
      g.description ? h("p", { "data-testid": "description" }, g.description) : null,
      h("section", { class: "panel" }, meta),
      dupes,
      h("section", { class: "panel" }, h("h2", {}, `Schema of v${g.version} (${g.features.length} features)`), schemaTable(g.features)),
      h("section", { class: "panel" }, h("h2", {}, "Versions"), versionsTable(g)),
      h("section", { class: "panel" }, h("h2", {}, "Lineage"), lineageGraph(g)),
      h("section", { class: "panel", "data-testid": "freshness-panel" },
        h("h2", {}, `Freshness of v${g.version}`), freshnessTable(g.freshness), windowButtons, volumeChart(g.freshness)),
      h("section", { class: "panel", "data-testid": "snippets" }, h("h2", {}, `Read v${g.version} of one entity`), snippetPanel(g.snippets)),
    );
    window.scrollTo(0, 0);
  }

  // --- start ------------------------------------------------------------------------------

  function start() {
    const q = document.getElementById("q");
    let timer = 0;
    q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const cur = parseHash();
        const p = cur.view === "search" ? new URLSearchParams(cur.params) : new URLSearchParams();
        if (q.value.trim()) p.set("q", q.value.trim());
        else p.delete("q");
        const target = searchHash(p);
        if (cur.view === "search") {
          history.replaceState(null, "", target);
          renderSearch(p, PAGE);
        } else {
          location.hash = target;
        }
      }, 120);
    });
    document.getElementById("search-form").addEventListener("submit", (e) => e.preventDefault());
    document.getElementById("auth").addEventListener("submit", (e) => {
      e.preventDefault();
      token = document.getElementById("token").value.trim();
      if (token) localStorage.setItem("dsf-token", token);
      else localStorage.removeItem("dsf-token");
      document.getElementById("auth").hidden = true;
      route();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "/" && document.activeElement !== q && !(e.target instanceof HTMLInputElement)) {
        e.preventDefault();
        q.focus();
      }
    });
    window.addEventListener("hashchange", route);
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
