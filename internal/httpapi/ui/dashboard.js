// SmartCloudOps dashboard. It polls the service's own API every few seconds
// and draws what the API answers: no framework, no third-party code, charts
// are SVG drawn here. The page holds no data of its own; with
// SMARTCLOUDOPS_REQUIRE_AUTH=true it needs a bearer token, which it keeps in
// sessionStorage (this tab only). Opening the page as /#token=… stores the
// token and removes it from the address bar (for wall screens and tests).
//
// After every poll the hidden #dash-status element carries what was drawn
// (data-polls, data-auth, data-charts, data-points, data-anomaly-markers), so
// a headless browser test can read the result from the DOM.
'use strict';

(function () {
  const TOKEN_KEY = 'smartcloudops.token';
  const MAX_CHARTS = 8;
  const HOSTS_LIMIT = 100;
  const SPARK_POINTS = 60;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const METRICS = {
    cpu_usage: {label: 'CPU', unit: '%', percent: true},
    memory_usage: {label: 'memory', unit: '%', percent: true},
    disk_usage: {label: 'disk', unit: '%', percent: true},
    network_in: {label: 'network in', unit: ''},
    network_out: {label: 'network out', unit: ''},
    load_average: {label: 'load average', unit: ''},
    response_time_ms: {label: 'response time', unit: 'ms'},
    error_rate: {label: 'error rate', unit: ''},
    request_rate: {label: 'request rate', unit: '/s'},
  };
  const METRIC_ORDER = Object.keys(METRICS);

  const $ = (id) => document.getElementById(id);
  const state = {
    token: '',
    interval: 5000,
    timer: 0,
    running: false,
    again: false,
    polls: 0,
    prevHTTP: null,
    rates: [],
    // ?metric=memory_usage picks the charted metric, as ?host= the host.
    metric: new URLSearchParams(location.search).get('metric') || '',
    points: 180,
    hostData: [], // [{host, series, anomalies, error}]
  };

  // ---------- small helpers ----------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function clock(t, seconds) {
    const d = new Date(t);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + (seconds ? ':' + pad(d.getSeconds()) : '');
  }

  function ago(t) {
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }

  function num(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (digits === undefined) digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
    return v.toFixed(digits);
  }

  function seconds(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v < 0.001) return (v * 1e6).toFixed(0) + ' µs';
    if (v < 1) return num(v * 1000) + ' ms';
    return num(v) + ' s';
  }

  function bytes(v) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return num(v, i === 0 ? 0 : 1) + ' ' + units[i];
  }

  function percent(v) { return isFinite(v) ? num(v * 100, 1) + '%' : '–'; }

  // ---------- API access ----------

  class ApiError extends Error {
    constructor(status, problem, path) {
      super(problem.detail || problem.title || (status ? 'HTTP ' + status : 'no answer'));
      this.status = status;
      this.problem = problem;
      this.path = path;
    }
  }

  function isAuthError(e) { return e instanceof ApiError && (e.status === 401 || e.status === 403); }

  // request GETs path with the token; a problem+json answer becomes an
  // ApiError carrying its status and detail. keep lists statuses whose body
  // is data (health answers 503 with its report when DOWN).
  async function request(path, opts) {
    opts = opts || {};
    const headers = {Accept: opts.accept || 'application/json'};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let resp;
    try {
      resp = await fetch(path, {headers, cache: 'no-store', credentials: 'omit'});
    } catch (err) {
      throw new ApiError(0, {detail: 'the server did not answer: ' + err.message}, path);
    }
    if (!resp.ok && !(opts.keep || []).includes(resp.status)) {
      let p = {};
      try { p = await resp.json(); } catch (_) { /* not a problem document */ }
      throw new ApiError(resp.status, p, path);
    }
    return opts.accept && opts.accept.startsWith('text/') ? resp.text() : resp.json();
  }

  // showError writes a tile's failure in place of its figures.
  function showError(container, err) {
    container.replaceChildren(el('p', {class: 'error', text: isAuthError(err) ? 'needs a valid token (see above)' : err.message}));
  }

  // ---------- health ----------

  async function loadHealth() {
    const list = $('health-components');
    const badge = $('health-badge');
    let h;
    try {
      h = await request('/performance/health', {keep: [503]});
    } catch (err) {
      badge.textContent = 'unreachable';
      badge.dataset.status = 'DOWN';
      showError(list, err);
      throw err;
    }
    badge.textContent = h.status;
    badge.dataset.status = h.status;
    const items = Object.keys(h.components || {}).sort().map((name) => {
      const c = h.components[name];
      const d = c.details || {};
      let detail = d.reason || d.error || '';
      if (!detail && d.latency_ms !== undefined) detail = num(d.latency_ms) + ' ms';
      if (!detail && d.state) detail = 'breaker ' + d.state;
      if (!detail && d.mode) detail = 'mode ' + d.mode;
      return el('li', {title: name + ': ' + c.status + (detail ? ' — ' + detail : '')},
        el('span', {class: 'dot', 'data-status': c.status}),
        el('b', {text: name}), ' ',
        el('span', {class: 'status', 'data-status': c.status, text: c.status}), ' ',
        el('span', {class: 'muted', text: detail}));
    });
    list.replaceChildren(...items);
  }

  // ---------- HTTP requests, from the Prometheus exposition ----------

  // parseHTTP reads smartcloudops_http_requests_total and
  // smartcloudops_http_request_duration_seconds out of the text format,
  // summing them over methods and codes, per route and in total.
  function parseHTTP(text) {
    const out = {total: 0, errors: 0, buckets: new Map(), routes: new Map()};
    const route = (name) => {
      if (!out.routes.has(name)) out.routes.set(name, {count: 0, buckets: new Map()});
      return out.routes.get(name);
    };
    const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('smartcloudops_http_request')) continue;
      const m = line.exec(raw);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
      const v = parseFloat(m[3]);
      if (m[1] === 'smartcloudops_http_requests_total') {
        out.total += v;
        if ((labels.code || '').startsWith('5')) out.errors += v;
        route(labels.route || '?').count += v;
      } else if (m[1] === 'smartcloudops_http_request_duration_seconds_bucket') {
        const le = labels.le === '+Inf' ? Infinity : parseFloat(labels.le);
        out.buckets.set(le, (out.buckets.get(le) || 0) + v);
        const r = route(labels.route || '?');
        r.buckets.set(le, (r.buckets.get(le) || 0) + v);
      }
    }
    return out;
  }

  function diffBuckets(cur, prev) {
    const out = new Map();
    for (const [le, v] of cur) out.set(le, v - ((prev && prev.get(le)) || 0));
    return out;
  }

  // quantile estimates the q-quantile from cumulative histogram buckets by
  // linear interpolation inside the bucket that holds it, as Prometheus's
  // histogram_quantile does; null without observations.
  function quantile(q, buckets) {
    const bs = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    if (!bs.length) return null;
    const total = bs[bs.length - 1][1];
    if (!(total > 0)) return null;
    const rank = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const [le, count] of bs) {
      if (count >= rank) {
        if (le === Infinity) return prevLe;
        if (count === prevCount) return le;
        return prevLe + (le - prevLe) * (rank - prevCount) / (count - prevCount);
      }
      prevLe = le;
      prevCount = count;
    }
    return prevLe;
  }

  async function loadHTTP() {
    const routesTable = $('http-routes');
    let text;
    try {
      text = await request('/performance/metrics', {accept: 'text/plain;version=0.0.4'});
    } catch (err) {
      showError(routesTable, err);
      throw err;
    }
    const at = performance.now();
    const cur = parseHTTP(text);
    const prev = state.prevHTTP;
    state.prevHTTP = {cur, at};
    // Over the last interval when there is one (and the process did not
    // restart in between), else since the service started.
    const delta = prev && cur.total >= prev.cur.total ? prev : null;
    const dt = delta ? (at - delta.at) / 1000 : 0;
    const count = cur.total - (delta ? delta.cur.total : 0);
    const errors = cur.errors - (delta ? delta.cur.errors : 0);
    const buckets = diffBuckets(cur.buckets, delta && delta.cur.buckets);
    $('http-window').textContent = delta ? '(last ' + num(dt, 0) + ' s)' : '(since start)';
    $('http-rate').textContent = delta && dt > 0 ? num(count / dt) : num(cur.total, 0);
    $('http-rate').nextElementSibling.textContent = delta ? 'req/s' : 'requests';
    $('http-p50').textContent = seconds(quantile(0.5, buckets));
    $('http-p99').textContent = seconds(quantile(0.99, buckets));
    $('http-5xx').textContent = count > 0 ? percent(errors / count) : '–';
    if (delta && dt > 0) {
      state.rates.push(count / dt);
      if (state.rates.length > SPARK_POINTS) state.rates.shift();
    }
    drawSpark($('http-spark'), state.rates);

    const rows = [];
    for (const [name, r] of cur.routes) {
      const p = delta && delta.cur.routes.get(name);
      const n = r.count - (p ? p.count : 0);
      if (n <= 0) continue;
      rows.push({name, n, p99: quantile(0.99, diffBuckets(r.buckets, p && p.buckets))});
    }
    rows.sort((a, b) => b.n - a.n);
    const head = el('tr', {}, el('th', {text: 'top routes'}), el('th', {text: delta ? 'req/s' : 'requests'}), el('th', {text: 'p99'}));
    routesTable.replaceChildren(head, ...rows.slice(0, 5).map((r) => el('tr', {},
      el('td', {text: r.name, title: r.name}),
      el('td', {text: delta && dt > 0 ? num(r.n / dt) : num(r.n, 0)}),
      el('td', {text: seconds(r.p99)}))));
  }

  function drawSpark(svg, values) {
    const w = 300;
    const h = 36;
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.replaceChildren();
    if (values.length < 2) return;
    const max = Math.max(...values, 1e-9);
    // Right-aligned and growing until SPARK_POINTS polls are kept; at least
    // a quarter of the width so the first polls read as a line, not a dot.
    const step = w / (Math.max(values.length, SPARK_POINTS / 4) - 1);
    const x0 = w - step * (values.length - 1);
    const pts = values.map((v, i) => (x0 + i * step).toFixed(1) + ',' + (h - 2 - (v / max) * (h - 4)).toFixed(1));
    svg.append(svgEl('polyline', {points: pts.join(' '), class: 'spark-line'}));
  }

  // ---------- cache ----------

  function meterRow(label, value, text, title) {
    const fill = el('i');
    fill.style.width = Math.max(0, Math.min(1, value || 0)) * 100 + '%';
    return el('div', {class: 'meter-row', title: title || ''},
      el('span', {class: 'meter-label', text: label}),
      el('span', {class: 'meter'}, fill),
      el('span', {class: 'meter-value', text}));
  }

  async function loadCache() {
    const box = $('cache-tiers');
    let c;
    try {
      c = await request('/performance/cache/stats');
    } catch (err) {
      showError(box, err);
      $('cache-extra').textContent = '';
      throw err;
    }
    $('cache-mode').textContent = c.mode ? '(' + c.mode + ')' : '';
    const tiers = [['L1 in-process', c.l1], ['L2 Redis', c.l2], ['fallback', c.fallback]];
    box.replaceChildren(...tiers.map(([name, t]) => {
      t = t || {};
      const lookups = (t.hits || 0) + (t.misses || 0);
      return meterRow(name, t.hit_rate, lookups ? percent(t.hit_rate) : 'no lookups',
        (t.hits || 0) + ' hits, ' + (t.misses || 0) + ' misses, ' + (t.entries || 0) + ' entries');
    }));
    box.dataset.tiers = String(tiers.length);
    const b = c.breaker || {};
    const comp = c.compression || {};
    const parts = [];
    if (b.state) parts.push('breaker ' + b.state + (b.fallback_active ? ' — FALLBACK ACTIVE' : ''));
    if (comp.bytes_in) parts.push('compression saved ' + bytes(comp.bytes_in - comp.bytes_out) + ' of ' + bytes(comp.bytes_in));
    $('cache-extra').textContent = parts.join(' · ');
  }

  // ---------- queues ----------

  async function loadQueues() {
    const box = $('queues');
    const [logs, anomaly] = await Promise.allSettled([request('/performance/logs/stats'), request('/performance/anomaly/stats')]);
    const rows = [];
    const extra = [];
    if (logs.status === 'fulfilled') {
      const l = logs.value;
      rows.push(meterRow('log queue', l.queue_capacity ? l.queue_length / l.queue_capacity : 0,
        l.queue_length + ' / ' + l.queue_capacity, 'records waiting for the log writer'));
      extra.push('log lines written ' + l.records_written + ', dropped ' + l.records_dropped_total);
    } else {
      rows.push(el('p', {class: 'error', text: 'logs: ' + (isAuthError(logs.reason) ? 'needs a valid token' : logs.reason.message)}));
    }
    if (anomaly.status === 'fulfilled') {
      const a = anomaly.value;
      rows.push(meterRow('anomaly queue', a.queue_capacity ? a.queue_depth / a.queue_capacity : 0,
        a.queue_depth + ' / ' + a.queue_capacity, 'samples waiting to be scored'));
      const sev = a.anomalies_by_severity || {};
      const found = ['critical', 'high', 'medium', 'low'].filter((k) => sev[k]).map((k) => sev[k] + ' ' + k);
      extra.push('samples scored ' + a.samples_scored + (found.length ? ', anomalies ' + found.join(', ') : '') +
        ' · model ' + (a.active_model ? a.active_model.version : a.mode || 'none'));
    } else {
      rows.push(el('p', {class: 'error', text: 'anomaly detection: ' + (isAuthError(anomaly.reason) ? 'needs a valid token' : anomaly.reason.message)}));
    }
    box.replaceChildren(...rows);
    $('queues-extra').textContent = extra.join(' · ');
    for (const r of [logs, anomaly]) if (r.status === 'rejected' && isAuthError(r.reason)) throw r.reason;
  }

  // ---------- hosts and their charts ----------

  async function loadHost(h) {
    const enc = encodeURIComponent(h.host);
    const series = await request('/api/v1/hosts/' + enc + '/metrics?limit=' + state.points);
    let anomalies = [];
    if (series.samples.length) {
      const from = series.samples[0].timestamp;
      const res = await request('/api/v1/anomalies?host=' + enc + '&from=' + encodeURIComponent(from) + '&limit=500');
      anomalies = res.anomalies;
    }
    const newest = series.samples.length ? series.samples[series.samples.length - 1].timestamp : '';
    return {host: h.host, last: Date.parse(h.last_sample || newest), series, anomalies};
  }

  async function loadHosts() {
    const charts = $('host-charts');
    let list;
    try {
      list = await request('/api/v1/hosts?limit=' + HOSTS_LIMIT);
    } catch (err) {
      state.hostData = [];
      showError(charts, err);
      $('hosts-note').textContent = '';
      throw err;
    }
    // The most recently active hosts get the charts; a link from an alert
    // (…/?host=web-1) asks for that host alone, listed or not.
    const only = new URLSearchParams(location.search).get('host');
    const shown = only ? [list.hosts.find(h => h.host === only) || {host: only}] :
      list.hosts.slice().sort((a, b) => Date.parse(b.last_sample) - Date.parse(a.last_sample) || (a.host < b.host ? -1 : 1)).slice(0, MAX_CHARTS);
    const results = await Promise.allSettled(shown.map(loadHost));
    state.hostData = results.map((r, i) => r.status === 'fulfilled' ? r.value : {host: shown[i].host, error: r.reason});
    const total = list.count + (list.truncated ? '+' : '');
    $('hosts-note').textContent = list.count === 0 ? 'no samples stored yet: POST /api/v1/metrics' :
      total + (list.count === 1 ? ' host' : ' hosts') + (shown.length < list.count ? ', charts for the ' + shown.length + ' most recently active' : '');
    updateMetricChoice();
    drawHosts();
    const authErr = results.find((r) => r.status === 'rejected' && isAuthError(r.reason));
    if (authErr) throw authErr.reason;
  }

  function updateMetricChoice() {
    const present = new Set();
    for (const d of state.hostData) if (d.series) for (const m of d.series.metrics) present.add(m);
    const names = METRIC_ORDER.filter((m) => present.has(m));
    const sel = $('metric');
    const have = [...sel.options].map((o) => o.value).join(',');
    if (have !== names.join(',')) {
      sel.replaceChildren(...names.map((m) => el('option', {value: m, text: METRICS[m].label + (METRICS[m].unit ? ' (' + METRICS[m].unit + ')' : '')})));
    }
    if (!names.includes(state.metric)) state.metric = names.includes('cpu_usage') ? 'cpu_usage' : names[0] || '';
    sel.value = state.metric;
  }

  function drawHosts() {
    const charts = $('host-charts');
    charts.replaceChildren();
    for (const d of state.hostData) {
      const card = el('article', {class: 'chart-card', 'data-host': d.host});
      const title = el('h3', {}, el('span', {class: 'host', text: d.host}));
      card.append(title);
      charts.append(card); // in the page before drawing, so the chart can take its width
      if (d.error) {
        card.append(el('p', {class: 'error', text: isAuthError(d.error) ? 'needs a valid token' : d.error.message}));
        continue;
      }
      const meta = METRICS[state.metric] || {label: state.metric, unit: ''};
      const svg = svgEl('svg', {class: 'chart', role: 'img', 'aria-label': meta.label + ' of ' + d.host});
      card.append(svg);
      const drawn = drawChart(svg, d, state.metric);
      title.append(
        el('span', {class: 'value', text: drawn.last === null ? '' : num(drawn.last) + ' ' + meta.unit}),
        el('span', {class: 'muted', text: 'last sample ' + ago(d.last)}),
        el('span', {class: drawn.markers ? 'count alert' : 'count', text: drawn.markers + (drawn.markers === 1 ? ' anomaly' : ' anomalies')}));
      if (d.series.truncated) card.append(el('p', {class: 'muted small', text: 'the latest ' + d.series.count + ' samples'}));
    }
    if (!state.hostData.length) charts.append(el('p', {class: 'muted', text: 'No host has sent samples yet.'}));
  }

  // niceStep is 1, 2 or 5 times a power of ten, about span/ticks.
  function niceStep(span, ticks) {
    const raw = span / ticks;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }

  // drawChart draws one host's metric over time with its anomalies marked
  // and returns what it drew.
  function drawChart(svg, d, metric) {
    const W = Math.max(280, svg.clientWidth || svg.parentNode.clientWidth || 560);
    const H = 170;
    const m = {l: 46, r: 12, t: 10, b: 24};
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    svg.replaceChildren();
    const pts = [];
    for (const s of d.series.samples) {
      const v = s.metrics[metric];
      if (v !== undefined) pts.push([Date.parse(s.timestamp), v]);
    }
    svg.dataset.points = String(pts.length);
    svg.dataset.metric = metric;
    if (!pts.length) {
      svg.dataset.anomalies = '0';
      const t = svgEl('text', {x: W / 2, y: H / 2, class: 'empty', 'text-anchor': 'middle'});
      t.textContent = 'no ' + ((METRICS[metric] || {}).label || metric) + ' samples in this window';
      svg.append(t);
      return {last: null, markers: 0};
    }
    let t0 = pts[0][0];
    let t1 = pts[pts.length - 1][0];
    if (t1 - t0 < 60000) { t0 -= 30000; t1 += 30000; }
    let lo = Math.min(0, ...pts.map((p) => p[1]));
    let hi = Math.max(...pts.map((p) => p[1]));
    if ((METRICS[metric] || {}).percent) hi = Math.max(hi, 100);
    if (hi <= lo) hi = lo + 1;
    const step = niceStep(hi - lo, 4);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const x = (t) => m.l + (t - t0) / (t1 - t0) * (W - m.l - m.r);
    const y = (v) => H - m.b - (v - lo) / (hi - lo) * (H - m.t - m.b);

    const grid = svgEl('g', {class: 'grid'});
    for (let v = lo; v <= hi + step / 2; v += step) {
      grid.append(svgEl('line', {x1: m.l, x2: W - m.r, y1: y(v), y2: y(v)}));
      const label = svgEl('text', {x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end'});
      label.textContent = num(v, step < 1 ? 2 : 0);
      grid.append(label);
    }
    const ticks = Math.max(2, Math.min(6, Math.floor((W - m.l - m.r) / 110)));
    const withSeconds = t1 - t0 < 5 * 60000;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (t1 - t0) * i / ticks;
      const label = svgEl('text', {x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle'});
      label.textContent = clock(t, withSeconds);
      grid.append(label);
    }
    svg.append(grid);

    const line = pts.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join('');
    const area = line + 'L' + x(pts[pts.length - 1][0]).toFixed(1) + ',' + y(lo) + 'L' + x(pts[0][0]).toFixed(1) + ',' + y(lo) + 'Z';
    svg.append(svgEl('path', {d: area, class: 'area'}), svgEl('path', {d: line, class: 'line'}));

    // Each anomaly sits on the sample it was detected at (or the nearest),
    // on the chart of the metric it names; a host-wide one (no metric) on
    // every chart.
    let markers = 0;
    const markerLayer = svgEl('g', {class: 'markers'});
    for (const a of d.anomalies.slice().reverse()) {
      if (a.metric && a.metric !== metric) continue;
      const t = Date.parse(a.detected_at);
      if (t < pts[0][0] - 1000 || t > pts[pts.length - 1][0] + 1000) continue;
      let best = pts[0];
      for (const p of pts) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      const cx = x(t);
      const cy = y(best[1]);
      const sev = a.severity;
      const g = svgEl('g', {class: 'anomaly sev-' + sev});
      g.append(svgEl('line', {x1: cx, x2: cx, y1: m.t, y2: H - m.b, class: 'anomaly-line'}));
      g.append(svgEl('circle', {cx, cy, r: 5, class: 'anomaly-marker', 'data-severity': sev, 'data-detected-at': a.detected_at}));
      const tip = svgEl('title');
      tip.textContent = sev + ' anomaly at ' + clock(t, true) + ' · score ' + num(a.score) +
        (a.metric ? ' · ' + a.metric : '') + (a.explanation ? ' · ' + a.explanation : '');
      g.append(tip);
      markerLayer.append(g);
      markers++;
    }
    svg.append(markerLayer);
    svg.dataset.anomalies = String(markers);
    return {last: pts[pts.length - 1][1], markers};
  }

  // ---------- recent anomalies ----------

  async function loadRecent() {
    const body = $('anomaly-table').tBodies[0];
    let res;
    try {
      res = await request('/api/v1/anomalies?limit=12');
    } catch (err) {
      body.replaceChildren(el('tr', {}, el('td', {colspan: '6', class: 'error', text: isAuthError(err) ? 'needs a valid token' : err.message})));
      throw err;
    }
    if (!res.anomalies.length) {
      body.replaceChildren(el('tr', {}, el('td', {colspan: '6', class: 'muted', text: 'No anomalies stored.'})));
      return;
    }
    body.replaceChildren(...res.anomalies.map((a) => {
      const t = Date.parse(a.detected_at);
      return el('tr', {},
        el('td', {text: clock(t, true), title: a.detected_at}),
        el('td', {text: a.host}),
        el('td', {}, el('span', {class: 'sev sev-' + a.severity, text: a.severity})),
        el('td', {text: num(a.score)}),
        el('td', {text: a.metric || '—'}),
        el('td', {class: 'explain', text: a.explanation || '', title: a.explanation || ''}));
    }));
  }

  // ---------- authentication ----------

  function readToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    state.token = sessionStorage.getItem(TOKEN_KEY) || '';
  }

  // showAuth shows why the API refused the token (401: none or a bad one;
  // 403: a valid token without the right), or hides the banner when nothing
  // was refused and the user did not open it. It returns the auth state.
  function showAuth(err) {
    const banner = $('auth-banner');
    const msg = $('auth-message');
    $('token-button').textContent = state.token ? 'Token ✓' : 'Token…';
    if (!err) {
      if (banner.dataset.mode !== 'asked') {
        banner.hidden = true;
        banner.dataset.mode = '';
      }
      return 'ok';
    }
    const mode = err.status === 401 ? 'unauthorized' : 'forbidden';
    if (mode === 'unauthorized') {
      msg.textContent = state.token ?
        'The token was refused (401): ' + err.message + '. Enter another token.' :
        'This server needs a token to show its data (401). Enter the admin token (SMARTCLOUDOPS_ADMIN_TOKEN) or a JWT with role user or admin.';
    } else {
      msg.textContent = 'The token is valid but may not read ' + err.path.split('?')[0] + ' (403): ' + err.message;
    }
    banner.hidden = false;
    banner.dataset.mode = mode;
    return mode;
  }

  function askToken() {
    const banner = $('auth-banner');
    $('auth-message').textContent = state.token ?
      'A token is in use in this tab. Enter another one, or forget it.' :
      'No token is set. Enter one if this server requires it (SMARTCLOUDOPS_REQUIRE_AUTH=true).';
    banner.hidden = false;
    banner.dataset.mode = 'asked';
    $('token-input').focus();
  }

  function closeBanner() {
    const banner = $('auth-banner');
    banner.hidden = true;
    banner.dataset.mode = '';
  }

  // ---------- polling ----------

  async function poll() {
    if (state.running) { state.again = true; return; }
    state.running = true;
    clearTimeout(state.timer);
    const results = await Promise.allSettled([loadHealth(), loadHTTP(), loadCache(), loadQueues(), loadHosts(), loadRecent()]);
    const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    const auth = failures.find((e) => isAuthError(e) && e.status === 401) || failures.find(isAuthError);
    const mode = showAuth(auth);
    state.polls++;
    const st = $('dash-status');
    let points = 0;
    let markers = 0;
    let charts = 0;
    for (const svg of document.querySelectorAll('#host-charts svg.chart')) {
      const n = Number(svg.dataset.points || 0);
      points += n;
      markers += Number(svg.dataset.anomalies || 0);
      if (n > 0) charts++;
    }
    Object.assign(st.dataset, {
      polls: String(state.polls), auth: mode, charts: String(charts), points: String(points),
      anomalyMarkers: String(markers), errors: String(failures.length),
      health: $('health-badge').dataset.status,
    });
    $('updated').textContent = 'updated ' + clock(Date.now(), true) + (failures.length ? ' · ' + failures.length + ' part(s) failed' : '');
    state.running = false;
    if (state.again) { state.again = false; poll(); return; }
    if (state.interval > 0) state.timer = setTimeout(tick, state.interval);
  }

  function tick() {
    // A hidden tab does not poll; it catches up when shown again.
    if (document.hidden) { state.timer = setTimeout(tick, state.interval); return; }
    poll();
  }

  function init() {
    readToken();
    $('interval').addEventListener('change', (e) => {
      state.interval = Number(e.target.value);
      clearTimeout(state.timer);
      if (state.interval > 0) poll();
    });
    $('metric').addEventListener('change', (e) => { state.metric = e.target.value; drawHosts(); });
    $('points').addEventListener('change', (e) => { state.points = Number(e.target.value); poll(); });
    $('token-button').addEventListener('click', () => {
      if ($('auth-banner').dataset.mode === 'asked') closeBanner();
      else askToken();
    });
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
      $('token-input').value = '';
      if (!v) return;
      state.token = v;
      sessionStorage.setItem(TOKEN_KEY, v);
      closeBanner();
      poll();
    });
    $('token-forget').addEventListener('click', () => {
      state.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      closeBanner();
      poll();
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
    let resize = 0;
    window.addEventListener('resize', () => { clearTimeout(resize); resize = setTimeout(drawHosts, 150); });
    poll();
  }

  init();
})();
