// The blockqnn report page: renders the runs' data (embedded JSON, or /data.json when
// served live) into tables, inline SVG charts and drawings. No library, no network
// request except the live page's own /data.json.
(() => {
  'use strict';

  const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  const POLL_MS = 2000;
  const LOW_QUANTILE = 0.1; // reward axes start at this quantile: low outliers fall below
  const MIN_LABELLED_BAND = 22; // px: narrower epsilon stages go unlabelled
  const MAX_TIPS = 1000; // dots with a tooltip; more would slow a big page down
  const $ = (id) => document.getElementById(id);
  const view = { run: 0, sort: 'id', desc: false, state: '', text: '' };
  let runs = [];
  let stamp = '';
  let pause = POLL_MS;

  // -- text -------------------------------------------------------------------------

  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);

  // The rule of blockqnn.evaluation.format_metric (show and the search summary use it).
  function fmt(value, name) {
    if (value === null || value === undefined) return '–';
    if (typeof value !== 'number') return esc(value);
    if (Number.isInteger(value) || Math.abs(value) >= 10000) {
      const [sign, digits] = [value < 0 ? '-' : '', String(Math.abs(Math.round(value)))];
      return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    }
    if (name === 'flops' && value) {
      return value.toFixed(Math.max(0, 3 - Math.floor(Math.log10(Math.abs(value)))));
    }
    return value.toFixed(Math.abs(value) >= 100 ? 2 : 3);
  }
  const label = (run, name) => run.labels[name] || name.replace(/_/g, ' ');

  const route = (runIndex, id) => (runIndex ? `#r${runIndex}-c${id}` : `#c${id}`);
  const link = (runIndex, id) => `<a href="${route(runIndex, id)}">#${id}</a>`;

  function table(headers, rows, attrs = '') {
    const head = headers.map((h) => `<th>${esc(h)}</th>`).join('');
    const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`);
    return `<table ${attrs}><thead><tr>${head}</tr></thead><tbody>${body.join('')}</tbody></table>`;
  }

  // -- data ---------------------------------------------------------------------------

  function prepare(run) {
    run.candidates = run.rows.map((row) => {
      const c = {};
      run.columns.forEach((name, i) => { c[name] = row[i]; });
      return c;
    });
    run.byId = new Map(run.candidates.map((c) => [c.id, c]));
    return run;
  }

  function load(payload) {
    runs = payload.runs.map(prepare);
    view.run = Math.min(view.run, runs.length - 1);
    renderAll();
  }

  // -- overview -----------------------------------------------------------------------

  function mergedRows(key) {
    const names = [];
    runs.forEach((run) => run[key].forEach(([name]) => {
      if (!names.includes(name)) names.push(name);
    }));
    return names.map((name) => {
      const values = runs.map((run) => {
        const found = run[key].find((row) => row[0] === name);
        return found ? fmt(found[1]) : '–';
      });
      const differs = runs.length > 1 && new Set(values).size > 1;
      return { cells: [esc(name), ...values], differs };
    });
  }

  function keyValueTable(key, id) {
    const rows = mergedRows(key);
    const headers = runs.length > 1 ? ['', ...runs.map((r) => r.name)] : ['', 'value'];
    const html = table(headers, rows.map((r) => r.cells), `id="${id}"`);
    const marks = rows.map((r, i) => (r.differs ? i : -1)).filter((i) => i >= 0);
    return { html, marks };
  }

  function renderOverview() {
    const settings = keyValueTable('settings', 'config');
    const evaluator = keyValueTable('evaluator', 'evaluator');
    const progress = keyValueTable('progress', 'progress');
    const notes = runs.flatMap((run) => run.notes.map((n) => (
      `<p class="note">${runs.length > 1 ? `<b>${esc(run.name)}:</b> ` : ''}${esc(n)}</p>`)));
    $('overview').innerHTML = `<div class="columns"><div><h3>Progress</h3>${progress.html}`
      + `</div><div><h3>Settings</h3>${settings.html}${notes.join('')}</div>`
      + `<div><h3>Evaluator</h3>${evaluator.html}</div></div>`;
    [[settings, 'config'], [evaluator, 'evaluator']].forEach(([found, id]) => {
      const rows = $(id).tBodies[0].rows;
      found.marks.forEach((i) => rows[i].classList.add('differs'));
    });
  }

  // -- best blocks --------------------------------------------------------------------

  function drawingOf(run, id, cls) {
    const uri = run.drawings[id];
    if (uri) return `<img class="${cls}" alt="block #${id}" src="${uri}">`;
    return `<div class="${cls}">${drawGraph(run, run.graphs[id])}</div>`;
  }

  const LEADER_METRICS = [
    'accuracy', 'test_accuracy', 'flops', 'params', 'density', 'latency_ms'];

  function renderLeaderboard() {
    if (runs.length > 1) { renderSideBySide(); return; }
    const run = runs[0];
    if (!run.top.length) {
      $('best').innerHTML = '<p id="leaderboard">No completed candidates yet.</p>';
      return;
    }
    const metrics = LEADER_METRICS.filter((m) => run.metrics.includes(m));
    const rows = run.top.map((id, i) => {
      const c = run.byId.get(id);
      return [i + 1, link(0, id), `<a href="${route(0, id)}">${drawingOf(run, id, 'thumb')}</a>`,
        `<code class="arch">${esc(c.arch)}</code>`, c.iteration,
        ...metrics.map((m) => fmt(c[m], m)), fmt(c.reward)];
    });
    const headers = ['rank', 'id', 'drawing', 'architecture', 'iteration',
      ...metrics.map((m) => label(run, m)), 'reward'];
    $('best').innerHTML = table(headers, rows, 'id="leaderboard"');
  }

  function renderSideBySide() {
    const columns = runs.map((run, r) => {
      const cards = run.top.slice(0, 3).map((id, i) => {
        const c = run.byId.get(id);
        return `<div class="card"><div><b>top ${i + 1}</b> ${link(r, id)} reward `
          + `${fmt(c.reward)}</div><a href="${route(r, id)}">${drawingOf(run, id, 'side')}</a>`
          + '</div>';
      });
      const title = `<h3 style="color:${COLOURS[r % COLOURS.length]}">${esc(run.name)}</h3>`;
      return `<div class="run-column">${title}${cards.join('') || 'no completed candidates'}</div>`;
    });
    $('best').innerHTML = `<div class="columns" id="side-by-side">${columns.join('')}</div>`;
  }

  // -- charts -------------------------------------------------------------------------

  function ticks(lo, hi, count = 5) {
    if (hi <= lo) { hi = lo + 1; }
    const raw = (hi - lo) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => (hi - lo) / s <= count + 1);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(+v.toPrecision(12));
    }
    return out;
  }

  function extent(values) {
    let lo = Infinity; let hi = -Infinity;
    values.forEach((v) => { if (v < lo) lo = v; if (v > hi) hi = v; });
    if (lo === Infinity) return [0, 1];
    if (lo === hi) return [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  }

  // spec: {title, xLabel, yLabel, logX, yFloor, bands: [[x0, x1, eps]], series: [{colour,
  //        points: [[x, y, id]], kind: 'line' | 'step' | 'dots' | 'front-dots', label, width,
  //        opacity, clip}]}; a clip series does not widen the y range (points outside it are
  //        left out), yFloor does.
  // An SVG chart with axes, grid, shaded bands and a legend.
  function chart(spec) {
    const W = 560; const H = 300; const L = 56; const R = 12; const T = 22; const B = 42;
    const tx = spec.logX ? (x) => Math.log10(x) : (x) => x;
    const all = spec.series.flatMap((s) => s.points);
    const [x0, x1] = extent(all.map((p) => tx(p[0])).concat(
      (spec.bands || []).flatMap((b) => [b[0], b[1]])));
    const framing = spec.series.filter((s) => !s.clip).flatMap((s) => s.points.map((p) => p[1]));
    const [y0, y1] = extent(framing.concat(spec.yFloor ?? []));
    const sx = (x) => L + ((tx(x) - x0) / (x1 - x0)) * (W - L - R);
    const sxRaw = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">`];
    (spec.bands || []).forEach(([a, b, eps], i) => {
      const left = sxRaw(a); const width = Math.max(sxRaw(b) - left, 1);
      parts.push(`<rect x="${left}" y="${T}" width="${width}" height="${H - T - B}" `
        + `fill="#888" fill-opacity="${0.03 + 0.14 * eps}"/>`);
      if (width >= MIN_LABELLED_BAND || !i) {
        parts.push(`<text class="band" x="${left + width / 2}" y="${T - 6}">`
          + `${i ? '' : 'ε='}${eps.toFixed(1)}</text>`);
      }
    });
    ticks(y0, y1).forEach((v) => parts.push(`<line class="grid" x1="${L}" x2="${W - R}" `
      + `y1="${sy(v)}" y2="${sy(v)}"/><text class="tick" x="${L - 4}" y="${sy(v) + 4}" `
      + `text-anchor="end">${+v.toPrecision(6)}</text>`));
    const xticks = spec.logX ? ticks(x0, x1).filter(Number.isInteger) : ticks(x0, x1);
    xticks.forEach((v) => {
      const x = sxRaw(v);
      const label = spec.logX ? `1e${v}` : +v.toPrecision(6);
      parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="${T}" y2="${H - B}"/>`
        + `<text class="tick" x="${x}" y="${H - B + 14}" text-anchor="middle">${label}</text>`);
    });
    spec.series.forEach((s) => parts.push(seriesSvg(
      s.clip ? { ...s, points: s.points.filter((p) => p[1] >= y0 && p[1] <= y1) } : s, sx, sy)));
    parts.push(`<text class="axis" x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">`
      + `${esc(spec.xLabel)}</text><text class="axis" transform="translate(14 ${(T + H - B) / 2}) `
      + `rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text></svg>`);
    const legend = spec.series.filter((s) => s.label).map((s) => `<span><i style="background:`
      + `${s.colour};opacity:${s.opacity || 1}"></i>${esc(s.label)}</span>`).join('');
    return `<figure><figcaption>${esc(spec.title)}</figcaption>${parts.join('')}`
      + `<div class="legend">${legend}</div></figure>`;
  }

  function seriesSvg(s, sx, sy) {
    const style = `stroke="${s.colour}" stroke-opacity="${s.opacity || 1}"`;
    if (s.kind === 'dots' || s.kind === 'front-dots') {
      const r = s.kind === 'dots' ? 2.2 : 3.6;
      const tips = s.points.length <= MAX_TIPS;
      return s.points.map((p) => `<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="${r}" `
        + `fill="${s.colour}" fill-opacity="${s.opacity || 0.5}">${tips ? `<title>#${p[2] ?? ''} `
        + `(${+p[0].toPrecision(4)}, ${+p[1].toPrecision(4)})</title>` : ''}</circle>`).join('');
    }
    if (s.points.length === 1) { // a one-epoch curve: a path of one point draws nothing
      const [p] = s.points;
      return `<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="3.6" fill="${s.colour}" ${style}/>`;
    }
    let d = '';
    s.points.forEach((p, i) => {
      if (i && s.kind === 'step') d += `H${sx(p[0])}`;
      d += `${i ? 'L' : 'M'}${sx(p[0])} ${sy(p[1])}`;
    });
    return `<path d="${d}" fill="none" ${style} stroke-width="${s.width || 1.5}"/>`;
  }

  function rewardChart(axis) {
    const series = runs.flatMap((run, r) => {
      const colour = COLOURS[r % COLOURS.length];
      const curve = run.curves[axis];
      const name = runs.length > 1 ? `${run.name} ` : '';
      const dots = runs.length > 1 ? [] : [{ kind: 'dots', colour, opacity: 0.25, clip: true,
        points: curve.points.map((p) => [p[0], p[1]]) }];
      return [...dots,
        { kind: 'line', colour, opacity: 0.55, width: 1, label: `${name}iteration mean`,
          points: curve.means },
        { kind: 'step', colour, width: 2.2, label: `${name}best so far`,
          points: curve.points.map((p) => [p[0], p[2]]) }];
    });
    const title = axis === 'index' ? 'Reward against candidate' : 'Reward against wall time';
    const xLabel = axis === 'index' ? 'candidate (proposal order)' : 'seconds since the start';
    const rewards = runs.flatMap((run) => run.curves[axis].points.map((p) => p[1]));
    const yFloor = quantile(rewards, LOW_QUANTILE);
    const cut = runs.length > 1 ? 0 : rewards.filter((v) => v < yFloor).length;
    return chart({ title: title + (cut ? ` (${cut} low rewards below the axis)` : ''), xLabel,
      yLabel: 'reward', series, yFloor, bands: runs[0].curves[axis].bands });
  }

  function quantile(values, q) {
    if (!values.length) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(q * (sorted.length - 1))];
  }

  const COST_NAMES = { flops: 'GFLOPs', latency_ms: 'latency (ms)' };

  function scatterCharts() {
    const costs = [...new Set(runs.flatMap((run) => run.scatters.map((s) => s.cost)))];
    return costs.map((cost) => {
      const series = runs.flatMap((run, r) => {
        const scatter = run.scatters.find((s) => s.cost === cost);
        if (!scatter) return [];
        const colour = COLOURS[r % COLOURS.length];
        const front = scatter.front.map((i) => scatter.points[i]);
        const name = runs.length > 1 ? `${run.name} ` : '';
        return [{ kind: 'dots', colour, opacity: 0.35, points: scatter.points },
          { kind: 'step', colour, width: 1.5, label: `${name}Pareto front`, points: front },
          { kind: 'front-dots', colour, opacity: 0.9, points: front }];
      });
      const values = series.flatMap((s) => s.points.map((p) => p[0])).filter((v) => v > 0);
      const logX = values.length > 0 && Math.max(...values) / Math.min(...values) > 20;
      const name = COST_NAMES[cost] || cost;
      return chart({ title: `Accuracy against ${name}`, xLabel: name + (logX ? ' (log)' : ''),
        yLabel: 'accuracy %', series, logX });
    });
  }

  function choiceChart(run, r) {
    if (!run.choices.length) return '';
    const rows = run.choices.map((c) => `<tr><td>${esc(c.choice)}</td><td class="num">${c.count}`
      + `</td><td class="num">${fmt(c.mean)}</td><td class="num">${fmt(c.others)}</td>`
      + `<td>${choiceBar(run, c)}</td></tr>`);
    const title = runs.length > 1 ? ` — ${esc(run.name)}` : '';
    return `<figure><figcaption>Mean reward per layer choice${title} (bar: candidates `
      + 'with it; tick: the others)</figcaption>'
      + `<table class="choices" id="choices-${r}"><thead><tr><th>choice</th><th>candidates</th>`
      + '<th>mean reward with</th><th>without</th><th></th></tr></thead>'
      + `<tbody>${rows.join('')}</tbody></table></figure>`;
  }

  function choiceBar(run, c) {
    const values = run.choices.flatMap((x) => [x.mean, x.others]).filter((v) => v !== null);
    const [lo, hi] = extent(values);
    const x = (v) => 4 + ((v - lo) / (hi - lo)) * 150;
    const others = c.others === null ? '' : `<line x1="${x(c.others)}" x2="${x(c.others)}" `
      + 'y1="1" y2="13" stroke="#333" stroke-width="2"/>';
    return `<svg width="160" height="14"><rect x="4" y="3" width="${x(c.mean) - 4}" height="8" `
      + `fill="#4c8dc9"/>${others}</svg>`;
  }

  function renderCharts() {
    const scatters = scatterCharts();
    const none = '<p class="note">No accuracy/cost chart: no FLOPs or latency measured.</p>';
    $('charts').innerHTML = `<div class="charts">${rewardChart('index')}${rewardChart('time')}`
      + `${scatters.join('') || none}</div><div class="charts">`
      + `${runs.map(choiceChart).join('')}</div>`;
  }

  // -- drawings of any candidate --------------------------------------------------------

  // A layered drawing of a compact graph ([node vocabulary ids, flat edge triples]):
  // rank = longest path from the input, rows ordered by their parents' mean position.
  function drawGraph(run, graph) {
    const [nodes, flat] = graph;
    const edges = [];
    for (let i = 0; i < flat.length; i += 3) edges.push(flat.slice(i, i + 3));
    const rank = nodes.map(() => 0);
    edges.forEach(([s, d]) => { rank[d] = Math.max(rank[d], rank[s] + 1); });
    const rows = [];
    nodes.forEach((_, i) => { (rows[rank[i]] = rows[rank[i]] || []).push(i); });
    const width = (i) => 16 + 7.2 * run.vocabulary[nodes[i]][0].length;
    const xs = []; const parents = nodes.map(() => []);
    edges.forEach(([s, d]) => parents[d].push(s));
    rows.forEach((row) => {
      row.sort((a, b) => centre(parents[a], xs, a) - centre(parents[b], xs, b));
      const total = row.reduce((sum, i) => sum + width(i) + 16, -16);
      let x = -total / 2;
      row.forEach((i) => { xs[i] = x + width(i) / 2; x += width(i) + 16; });
    });
    const extent = nodes.map((_, i) => [xs[i] - width(i) / 2, xs[i] + width(i) / 2]).flat();
    const y = (i) => 20 + rank[i] * 58;
    let bends = 0;
    const parts = edges.map(([s, d, v]) => {
      const [label, kind] = run.vocabulary[v];
      const [a, b] = [y(s) + 12, y(d) - 12];
      // an edge that skips ranks bows out, alternately right and left, clear of the boxes
      const bend = rank[d] - rank[s] > 1 ? (bends++ % 2 ? -1 : 1) * 34 * (rank[d] - rank[s] - 1)
        : 0;
      const colour = run.strokes[kind] || '#555';
      const [mx, my] = [(xs[s] + xs[d]) / 2 + 0.75 * bend, (a + b) / 2];
      extent.push(mx - 6 * label.length - 8, mx + 6 * label.length + 8);
      const anchor = bend < 0 ? 'end' : 'start';
      const text = label ? `<text x="${mx + (bend < 0 ? -4 : 4)}" y="${my}" fill="${colour}" `
        + `font-size="10" text-anchor="${anchor}">${esc(label)}</text>` : '';
      return `<path d="M${xs[s]} ${a}C${xs[s] + bend} ${a + (b - a) / 3} ${xs[d] + bend} `
        + `${a + (2 * (b - a)) / 3} ${xs[d]} ${b}" fill="none" stroke="${colour}" `
        + `marker-end="url(#arrow)"/>${text}`;
    });
    const left = Math.min(...extent) - 10;
    const right = Math.max(...extent) + 10;
    nodes.forEach((v, i) => {
      const [label, kind] = run.vocabulary[v];
      parts.push(`<rect x="${xs[i] - width(i) / 2}" y="${y(i) - 12}" width="${width(i)}" `
        + `height="24" rx="4" fill="${run.fills[kind] || '#fff'}" stroke="#333"/>`
        + `<text x="${xs[i]}" y="${y(i) + 4}" text-anchor="middle" font-size="12">`
        + `${esc(label)}</text>`);
    });
    const height = y(nodes.length - 1) + 22;
    return `<svg class="dag" viewBox="${left} 0 ${right - left} ${height}" `
      + `width="${right - left}" height="${height}"><defs><marker id="arrow" viewBox="0 0 8 8" `
      + 'refX="8" refY="4" markerWidth="6" markerHeight="6" orient="auto"><path d="M0 0L8 4L0 8z" '
      + `fill="#555"/></marker></defs>${parts.join('')}</svg>`;
  }

  function centre(parents, xs, own) {
    if (!parents.length) return own;
    return parents.reduce((sum, p) => sum + xs[p], 0) / parents.length;
  }

  // -- all candidates ----------------------------------------------------------------------

  function renderCandidateControls() {
    const choices = runs.map((run, i) => `<option value="${i}"${i === view.run ? ' selected' : ''}>`
      + `${esc(run.name)}</option>`).join('');
    $('run-choice').innerHTML = choices;
    $('run-choice').hidden = runs.length < 2;
  }

  function matches(c) {
    if (view.state === 'reused') { if (c.reused_from === null) return false; }
    else if (view.state && c.state !== view.state) return false;
    return !view.text || c.arch.toLowerCase().includes(view.text);
  }

  function compare(a, b) {
    const x = a[view.sort]; const y = b[view.sort];
    if (x === y) return a.id - b.id;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    const order = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return view.desc ? -order : order;
  }

  function renderCandidates() {
    const run = runs[view.run];
    const { columns } = run;
    const arrow = view.desc ? ' ▼' : ' ▲';
    $('candidates').tHead.innerHTML = `<tr>${columns.map((c) => `<th data-column="${c}">`
      + `${esc(label(run, c))}${c === view.sort ? arrow : ''}</th>`).join('')}</tr>`;
    const shown = run.candidates.filter(matches).sort(compare);
    const cell = (c, name) => (name === 'arch' ? `<td><code>${esc(c.arch)}</code></td>`
      : `<td class="${typeof c[name] === 'number' ? 'num' : ''}">${fmt(c[name], name)}</td>`);
    const html = shown.map((c) => `<tr data-id="${c.id}" class="${c.state}">`
      + `${columns.map((name) => cell(c, name)).join('')}</tr>`);
    $('candidates').tBodies[0].innerHTML = html.join('');
    $('shown').textContent = `${shown.length} of ${run.candidates.length} candidates`;
  }

  function onHeaderClick(event) {
    const column = event.target.closest('th')?.dataset.column;
    if (!column) return;
    view.desc = column === view.sort ? !view.desc : column === 'reward';
    view.sort = column;
    renderCandidates();
  }

  function onRowClick(event) {
    const row = event.target.closest('tr[data-id]');
    if (row && !event.target.closest('a')) location.hash = route(view.run, row.dataset.id);
  }

  let typing = 0;
  function onFilter() {
    clearTimeout(typing);
    typing = setTimeout(() => {
      view.state = $('state-filter').value;
      view.text = $('text-filter').value.trim().toLowerCase();
      renderCandidates();
    }, 120);
  }

  // -- failures -----------------------------------------------------------------------

  function renderFailures() {
    const rows = runs.flatMap((run, r) => run.candidates.filter((c) => c.state === 'failed')
      .map((c) => [...(runs.length > 1 ? [esc(run.name)] : []), link(r, c.id), c.iteration,
        c.attempts, `<pre>${esc(run.details[c.id].error || '')}</pre>`,
        `<code class="arch">${esc(c.arch)}</code>`]));
    const headers = [...(runs.length > 1 ? ['run'] : []), 'id', 'iteration', 'attempts', 'error',
      'architecture'];
    $('failures').innerHTML = rows.length ? table(headers, rows, 'id="failed"')
      : '<p id="failed">No failed candidates.</p>';
  }

  // -- detail view --------------------------------------------------------------------

  function renderDetail() {
    const found = /^#(?:r(\d+)-)?c(\d+)$/.exec(location.hash);
    const run = found && runs[Number(found[1] || 0)];
    const c = run && run.byId.get(Number(found[2]));
    $('detail').hidden = !c;
    if (!c) return;
    const r = Number(found[1] || 0);
    const details = run.details[c.id];
    const estimate = c.reward === null ? details.extra.estimate : undefined;
    const reward = estimate
      ? `~${fmt(estimate.reward)} (estimated: stopped at rung ${estimate.rung})`
      : fmt(c.reward);
    const metrics = [['state', esc(c.state)], ['reward', reward],
      ...run.metrics.map((m) => [esc(label(run, m)), fmt(c[m], m)]),
      ['layers', c.layers], ['iteration', c.iteration], ['epsilon', fmt(c.epsilon)]];
    const timings = [['proposed', fmt(details.created)], ['started', fmt(details.started)],
      ['finished', fmt(details.finished)],
      ['evaluation cost', c.cost_s === null ? '–' : `${fmt(c.cost_s)} s`],
      ['attempts', c.attempts], ['worker', fmt(c.worker)],
      ['reused result of', c.reused_from === null ? '–' : link(r, c.reused_from)]];
    const duplicates = details.duplicates.map((id) => link(r, id)).join(' ') || 'none';
    const command = run.train_command
      ? `<pre id="train-command">${esc(run.train_command.replaceAll('{id}', c.id))}</pre>`
      : `<p>No command: ${run.space === 'nb201' ? 'NAS-Bench-201 cells are looked up in '
        + 'their table' : 'this run looked its blocks up in a table'}, nothing to train.</p>`;
    $('detail').innerHTML = '<button class="close" title="close (Esc)">×</button>'
      + `<h2>Candidate #${c.id}${runs.length > 1 ? ` of ${esc(run.name)}` : ''}</h2>`
      + `<div class="columns"><div>${drawingOf(run, c.id, 'full')}</div><div>`
      + `${table(['', ''], metrics.map(([k, v]) => [esc(k), v ?? '–']))}</div></div>`
      + `<h3>Codes</h3><pre>${esc(c.arch)}</pre>`
      + (details.error ? `<h3>Error</h3><pre class="error">${esc(details.error)}</pre>` : '')
      + epochCurves({ ...details.extra, stored: details.curve })
      + `<h3>Timings</h3>${table(['', ''], timings.map(([k, v]) => [esc(k), v ?? '–']))}`
      + `<h3>Isomorphic duplicates</h3><p id="duplicates">${duplicates}</p>`
      + `<h3>Train it with the run's network</h3>${command}`;
  }

  function closeDetail() {
    history.pushState(null, '', location.pathname + location.search); // no jump to the top
    renderDetail();
  }

  // Lists of numbers (or of records with numeric fields) stored with a candidate: the
  // stored per-epoch curve and any list an evaluator keeps in its extras, drawn against
  // their ``epoch`` field or position.
  const NOT_CURVES = new Set(['epoch', 'rung']);
  function epochCurves(extra) {
    const series = {};
    Object.entries(extra).forEach(([key, value]) => {
      if (!Array.isArray(value) || !value.length) return;
      value.forEach((item, i) => {
        const fields = typeof item === 'number' ? { [key]: item } : (item || {});
        const x = typeof fields.epoch === 'number' ? fields.epoch : i + 1;
        Object.entries(fields).forEach(([name, v]) => {
          if (typeof v === 'number' && !NOT_CURVES.has(name)) {
            (series[name] = series[name] || []).push([x, v]);
          }
        });
      });
    });
    const names = Object.keys(series);
    if (!names.length) return '<h3>Training curve</h3><p>No per-epoch curve stored.</p>';
    return '<h3>Training curve</h3>' + names.map((name, i) => chart({ // one axis each
      title: `${name.replace(/_/g, ' ')} per epoch`, xLabel: 'epoch', yLabel: name,
      series: [{ kind: 'line', colour: COLOURS[i % COLOURS.length], points: series[name] }],
    })).join('');
  }

  // -- page ---------------------------------------------------------------------------

  function renderAll() {
    const live = document.body.dataset.live === '1';
    $('meta').textContent = `${runs.map((r) => r.path).join(' · ')} · generated `
      + `${runs[0].generated}${live ? ` · live, updated ${new Date().toLocaleTimeString()}` : ''}`;
    renderOverview();
    renderLeaderboard();
    renderCharts();
    renderCandidateControls();
    renderCandidates();
    renderFailures();
    renderDetail();
  }

  function applyQuery() {
    const query = new URLSearchParams(location.search);
    if (query.has('sort')) view.sort = query.get('sort');
    view.desc = query.get('order') === 'desc';
    view.state = query.get('state') || '';
    view.text = (query.get('q') || '').toLowerCase();
    $('state-filter').value = view.state;
    $('text-filter').value = view.text;
  }

  async function poll() {
    try {
      const response = await fetch('data.json', { cache: 'no-store' });
      const payload = await response.json();
      if (!response.ok) throw new Error(payload.error || response.statusText); // e.g. run.db gone
      const next = JSON.stringify(payload.runs.map((r) => [r.progress, r.rows.length, r.status]));
      if (next !== stamp) {
        stamp = next;
        const begun = performance.now();
        load(payload);
        pause = Math.max(POLL_MS, 3 * (performance.now() - begun)); // big runs poll less often
      }
    } catch (error) {
      $('meta').textContent = `live: no update (${error.message})`;
    }
    setTimeout(poll, pause);
  }

  function start() {
    applyQuery();
    $('candidates').tHead.addEventListener('click', onHeaderClick);
    $('candidates').tBodies[0].addEventListener('click', onRowClick);
    $('state-filter').addEventListener('change', onFilter);
    $('text-filter').addEventListener('input', onFilter);
    $('run-choice').addEventListener('change', (e) => {
      view.run = Number(e.target.value);
      renderCandidates();
    });
    window.addEventListener('hashchange', renderDetail);
    $('detail').addEventListener('click', (e) => {
      if (e.target.closest('.close')) closeDetail();
    });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(); });
    if (document.body.dataset.live === '1') poll();
    else load(JSON.parse($('blockqnn-data').textContent));
  }

  start();
})();
