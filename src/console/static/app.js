import { h, render } from '/console/vendor/preact.mjs';
import { useEffect, useRef, useState, useCallback } from '/console/vendor/hooks.mjs';
import htm from '/console/vendor/htm.mjs';
import uPlot from '/console/vendor/uplot.mjs';
import { t, stateLabel } from '/console/i18n.js';

const html = htm.bind(h);

// ---- API ------------------------------------------------------------------

let csrf = '';

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/** JSON to and from /console/api/…; actions carry the session's CSRF token. */
async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(`/console/api/${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...(method !== 'GET' ? { 'X-CSRF-Token': csrf } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401 && path !== 'login') window.dispatchEvent(new Event('mj-logged-out'));
    throw new ApiError(res.status, data.error?.code, data.error?.message ?? res.statusText);
  }
  return data;
}

// ---- The live feed: one EventSource per tab -------------------------------

const listeners = new Set();
let source;
let connected = false;
const connectionListeners = new Set();

function openFeed() {
  if (source) return;
  source = new EventSource('/console/api/events');
  const emit = (type) => (e) => {
    const data = JSON.parse(e.data);
    for (const l of listeners) l(type, data);
  };
  for (const type of ['jobs', 'deliveries', 'queues']) source.addEventListener(type, emit(type));
  source.addEventListener('hello', () => { connected = true; for (const l of connectionListeners) l(true); for (const l of listeners) l('hello', {}); });
  source.onerror = () => { connected = false; for (const l of connectionListeners) l(false); };
}

function closeFeed() {
  source?.close();
  source = undefined;
}

/** Calls `onEvent(type, data)` for every feed event while mounted. */
function useFeed(onEvent) {
  const ref = useRef(onEvent);
  ref.current = onEvent;
  useEffect(() => {
    const l = (type, data) => ref.current(type, data);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
}

/** A function that runs `fn` at most once per `ms` (the last call always runs). */
function useThrottled(fn, ms) {
  const state = useRef({ timer: undefined, last: 0 });
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => () => clearTimeout(state.current.timer), []);
  return useCallback(() => {
    const s = state.current;
    if (s.timer) return;
    const wait = Math.max(0, s.last + ms - Date.now());
    s.timer = setTimeout(() => { s.timer = undefined; s.last = Date.now(); ref.current(); }, wait);
  }, [ms]);
}

/** Loads `load()` now and whenever `deps` change; `reload` runs it again. */
function useLoad(load, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const ref = useRef(load);
  ref.current = load;
  const reload = useCallback(() => ref.current().then((data) => setState({ data, error: undefined }), (error) => setState((s) => ({ data: s.data, error }))), []);
  useEffect(() => { reload(); }, deps);
  return [state.data, state.error, reload, (data) => setState({ data, error: undefined })];
}

// ---- Small pieces ----------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
/** The instant as CI writes it, in the browser's zone: 2022-06-27T15:23:10+0800. */
function ciTime(date) {
  const off = -date.getTimezoneOffset();
  const a = Math.abs(off);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${off >= 0 ? '+' : '-'}${pad(Math.floor(a / 60))}${pad(a % 60)}`;
}

/** A time in the browser's zone, the CI timestamp (the server's, when given) on hover. */
function Time({ iso, ci }) {
  if (!iso) return html`<span class="muted">-</span>`;
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const text = today ? d.toLocaleTimeString() : d.toLocaleString();
  return html`<time datetime=${iso} title=${ci && ci !== '-' ? ci : ciTime(d)}>${text}</time>`;
}

function State({ state }) {
  return html`<span class=${`state state-${state}`} title=${state} data-state=${state}>${stateLabel(state)}</span>`;
}

function Progress({ value, state }) {
  if (state !== 'Running') return html`<span class="muted">${state === 'Success' ? '100%' : ''}</span>`;
  return html`<span class="progress"><span style=${{ width: `${value}%` }}></span><em>${value}%</em></span>`;
}

function seconds(s) {
  if (s === null || s === undefined) return '-';
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

function ErrorLine({ error }) {
  return error ? html`<p class="error" role="alert">${error.message}</p>` : null;
}

/** CI's one-line XML, indented for reading (the bytes are the API's; only whitespace is added). */
function prettyXml(xml) {
  let depth = 0;
  return xml.replace(/>\s*</g, '>\n<').split('\n').map((line) => {
    if (line.startsWith('</')) depth--;
    const out = '  '.repeat(Math.max(0, depth)) + line;
    if (/^<[^/!?][^>]*[^/]>$/.test(line)) depth++;
    return out;
  }).join('\n');
}

function confirmed(text) {
  return window.confirm(text);
}

// ---- Login -----------------------------------------------------------------

function Login({ onLogin }) {
  const [error, setError] = useState();
  const [busy, setBusy] = useState(false);
  const submit = async (body) => {
    setBusy(true);
    setError(undefined);
    try {
      await api('login', { method: 'POST', body });
      onLogin();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  // The one-click URL `mediajobs serve` prints: /console/#token=…, read here and taken out of the address bar.
  useEffect(() => {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      history.replaceState(null, '', location.pathname);
      window.dispatchEvent(new HashChangeEvent('hashchange'));
      submit({ token: decodeURIComponent(m[1]) });
    }
  }, []);
  const onToken = (e) => { e.preventDefault(); submit({ token: e.target.token.value.trim() }); };
  const onKeys = (e) => { e.preventDefault(); submit({ secretId: e.target.secretId.value.trim(), secretKey: e.target.secretKey.value.trim() }); };
  return html`<main class="login">
    <h1>${t('title')}</h1>
    <form onSubmit=${onToken} class="card" data-testid="login-admin">
      <label>${t('adminToken')}<input name="token" type="password" autocomplete="current-password" required /></label>
      <button type="submit" disabled=${busy}>${t('login')}</button>
    </form>
    <p class="muted">${t('or')}</p>
    <form onSubmit=${onKeys} class="card" data-testid="login-app">
      <label>${t('secretId')}<input name="secretId" autocomplete="username" required /></label>
      <label>${t('secretKey')}<input name="secretKey" type="password" autocomplete="current-password" required /></label>
      <button type="submit" disabled=${busy}>${t('login')}</button>
    </form>
    <${ErrorLine} error=${error} />
    <p class="muted small">${t('loginHelp')}</p>
  </main>`;
}

// ---- Overview --------------------------------------------------------------

function Chart({ series }) {
  const box = useRef();
  const plot = useRef();
  useEffect(() => {
    const data = [series.map((p) => p.t), series.map((p) => p.Success), series.map((p) => p.Failed), series.map((p) => p.Cancel)];
    if (plot.current) {
      plot.current.setData(data);
      return;
    }
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const width = () => Math.max(300, box.current.clientWidth);
    plot.current = new uPlot({
      width: width(), height: 220,
      scales: { x: { time: true } },
      axes: [{ stroke: color('--fg-muted'), grid: { stroke: color('--grid') } }, { stroke: color('--fg-muted'), grid: { stroke: color('--grid') } }],
      series: [{}, { label: stateLabel('Success'), stroke: color('--ok'), width: 2 }, { label: stateLabel('Failed'), stroke: color('--bad'), width: 2 }, { label: stateLabel('Cancel'), stroke: color('--warn'), width: 1 }],
    }, data, box.current);
    const onResize = () => plot.current?.setSize({ width: width(), height: 220 });
    window.addEventListener('resize', onResize);
    return () => window.removeEventListener('resize', onResize);
  }, [series]);
  useEffect(() => () => { plot.current?.destroy(); plot.current = undefined; }, []);
  return html`<div ref=${box} class="chart" data-testid="throughput-chart"></div>`;
}

function Counter({ label, value, href, tone }) {
  const body = html`<span class="label">${label}</span><strong class=${tone ?? ''}>${value}</strong>`;
  return href ? html`<a class="counter" href=${href}>${body}</a>` : html`<div class="counter">${body}</div>`;
}

function Overview() {
  const [data, error, reload] = useLoad(() => api('overview'), []);
  const throttled = useThrottled(reload, 1000);
  useFeed(() => throttled());
  if (!data) return html`<${ErrorLine} error=${error} />`;
  const { now, lastHour, callbacks } = data;
  return html`<section data-testid="overview">
    <div class="counters">
      <${Counter} label=${t('waiting')} value=${now.Submitted} href="#/jobs?state=Submitted" />
      <${Counter} label=${t('paused')} value=${now.Pause} href="#/jobs?state=Pause" />
      <${Counter} label=${t('running')} value=${now.Running} href="#/jobs?state=Running" tone="run" />
      <${Counter} label=${t('succeeded')} value=${lastHour.Success} href="#/jobs?state=Success" tone="ok" />
      <${Counter} label=${t('failed')} value=${lastHour.Failed} href="#/jobs?state=Failed" tone=${lastHour.Failed ? 'bad' : ''} />
      <${Counter} label=${t('cancelled')} value=${lastHour.Cancel} href="#/jobs?state=Cancel" />
      <${Counter} label=${t('oldestWaiting')} value=${seconds(data.oldestWaitingS)} />
      <${Counter} label=${t('workersUp')} value=${data.workersUp} href="#/workers" />
      <${Counter} label=${t('callbacksPending')} value=${callbacks.pending} href="#/callbacks" />
      <${Counter} label=${t('callbacksGivenUp')} value=${callbacks.givenUp} href="#/callbacks?state=GivenUp" tone=${callbacks.givenUp ? 'bad' : ''} />
    </div>
    <h2>${t('throughput')}</h2>
    <${Chart} series=${data.series} />
    <h2>${t('queues')}</h2>
    <${QueueTable} queues=${data.queues} readonly=${true} />
  </section>`;
}

// ---- Jobs ------------------------------------------------------------------

const STATES = ['Submitted', 'Running', 'Success', 'Failed', 'Pause', 'Cancel'];

function parseQuery(q) {
  return Object.fromEntries(new URLSearchParams(q));
}

function matches(row, f) {
  if (f.app && row.appid !== f.app) return false;
  if (f.queue && row.queue_id !== f.queue) return false;
  if (f.tag && row.tag !== f.tag) return false;
  if (f.state && !f.state.split(',').includes(row.state)) return false;
  if (f.kind && row.kind !== f.kind) return false;
  if (f.input && row.input_object !== f.input) return false;
  if (f.from && row.created_at < new Date(f.from).toISOString()) return false;
  if (f.to && row.created_at > new Date(f.to).toISOString()) return false;
  return true;
}

function Jobs({ query, session }) {
  const filters = parseQuery(query);
  const [page, error, , setPage] = useLoad(() => api(`jobs?${new URLSearchParams({ ...filters, size: '50' })}`), [query]);
  // Rows move live: a changed row is replaced where it is; a new one that matches goes on top of the first page.
  useFeed((type, data) => {
    if (type !== 'jobs' || !page) return;
    let rows = page.jobs;
    let changed = false;
    for (const row of data.jobs) {
      const i = rows.findIndex((r) => r.job_id === row.job_id);
      if (i >= 0) {
        rows = rows.slice();
        rows[i] = row;
        changed = true;
      } else if (!filters.before && matches(row, filters) && (rows.length === 0 || BigInt(row.seq) > BigInt(rows[0].seq))) {
        rows = [row, ...rows].slice(0, 200);
        changed = true;
      }
    }
    if (changed) setPage({ ...page, jobs: rows.filter((r) => matches(r, filters) || !filters.state) });
  });
  const onFilter = (e) => {
    e.preventDefault();
    const f = {};
    for (const [k, v] of new FormData(e.target)) if (String(v).trim()) f[k] = String(v).trim();
    location.hash = `#/jobs?${new URLSearchParams(f)}`;
  };
  return html`<section data-testid="jobs">
    <form class="filters" onSubmit=${onFilter}>
      ${session.kind === 'admin' ? html`<label>${t('app')}<input name="app" value=${filters.app ?? ''} size="10" /></label>` : null}
      <label>${t('queue')}<input name="queue" value=${filters.queue ?? ''} size="12" /></label>
      <label>${t('tag')}<input name="tag" value=${filters.tag ?? ''} size="12" /></label>
      <label>${t('state')}<select name="state" value=${filters.state ?? ''}>
        <option value="">${t('any')}</option>
        ${STATES.map((s) => html`<option value=${s}>${stateLabel(s)}</option>`)}
      </select></label>
      <label>${t('kind')}<select name="kind" value=${filters.kind ?? ''}>
        <option value="">${t('any')}</option><option value="job">${t('job')}</option><option value="task">${t('task')}</option>
      </select></label>
      <label>${t('input')}<input name="input" value=${filters.input ?? ''} size="14" /></label>
      <label>${t('from')}<input name="from" type="datetime-local" value=${filters.from ?? ''} /></label>
      <label>${t('to')}<input name="to" type="datetime-local" value=${filters.to ?? ''} /></label>
      <button type="submit">${t('filter')}</button>
      <a class="button secondary" href="#/jobs">${t('clear')}</a>
    </form>
    <${ErrorLine} error=${error} />
    ${page && html`<div>
      <table class="list jobs">
        <thead><tr><th>${t('id')}</th><th>${t('tag')}</th><th>${t('state')}</th><th>${t('progress')}</th><th>${t('input')}</th><th>${t('queue')}</th><th>${t('created')}</th><th>${t('ended')}</th><th>${t('code')}</th></tr></thead>
        <tbody>
          ${page.jobs.map((j) => html`<tr key=${j.job_id} data-job-id=${j.job_id} data-state=${j.state} onClick=${() => { location.hash = `#/jobs/${j.job_id}`; }}>
            <td class="mono"><a href=${`#/jobs/${j.job_id}`}>${j.kind === 'task' ? `#${j.seq}` : j.job_id}</a></td>
            <td>${j.tag}${j.kind === 'task' ? html` <span class="pill">${t('task')}</span>` : null}</td>
            <td><${State} state=${j.state} /></td>
            <td><${Progress} value=${j.progress} state=${j.state} /></td>
            <td class="mono ellipsis" title=${j.input_object}>${j.input_object}</td>
            <td class="mono ellipsis" title=${j.queue_id}>${j.queue_id.slice(0, 9)}…</td>
            <td><${Time} iso=${j.created_at} ci=${j.ci_times.created} /></td>
            <td><${Time} iso=${j.ended_at} ci=${j.ci_times.ended} /></td>
            <td class="ellipsis" title=${j.message}>${j.state === 'Failed' ? j.code : ''}</td>
          </tr>`)}
        </tbody>
      </table>
      ${page.jobs.length === 0 ? html`<p class="muted">${t('none')}</p>` : null}
      <p class="pager">
        ${filters.before ? html`<a href=${`#/jobs?${new URLSearchParams({ ...filters, before: '' })}`.replace(/&?before=(&|$)/, '$1')}>${t('newest')}</a>` : null}
        ${page.next ? html`<a href=${`#/jobs?${new URLSearchParams({ ...filters, before: page.next })}`} data-testid="older">${t('more')}</a>` : null}
        <span class="muted small">${t('queryMs', { ms: page.query_ms })}</span>
      </p>
    </div>`}
  </section>`;
}

function JobDetail({ jobId }) {
  const [data, error, reload] = useLoad(() => api(`jobs/${jobId}`), [jobId]);
  const [actionError, setActionError] = useState();
  const throttled = useThrottled(reload, 300);
  useFeed((type, d) => {
    if (type === 'jobs' && d.jobs.some((j) => j.job_id === jobId)) throttled();
    if (type === 'deliveries' && (d.deliveries.length === 0 || d.deliveries.some((x) => x.job_id === jobId))) throttled();
  });
  if (!data) return html`<${ErrorLine} error=${error} />`;
  const j = data.job;
  const cancel = async () => {
    if (!confirmed(t('confirmCancel'))) return;
    setActionError(undefined);
    try { await api(`jobs/${jobId}/cancel`, { method: 'POST' }); reload(); } catch (e) { setActionError(e); }
  };
  const redeliver = async (id) => {
    setActionError(undefined);
    try { await api(`callbacks/${id}/redeliver`, { method: 'POST' }); reload(); } catch (e) { setActionError(e); }
  };
  const retry = async () => {
    if (!confirmed(t('confirmRetry'))) return;
    setActionError(undefined);
    try { await api(`jobs/${jobId}/retry`, { method: 'POST' }); reload(); } catch (e) { setActionError(e); }
  };
  return html`<section data-testid="job-detail" data-job-id=${j.job_id} data-state=${j.state}>
    <p><a href="#/jobs">${t('back')}</a></p>
    <h2 class="mono">${j.kind === 'task' ? `${t('task')} #${j.seq} · ` : ''}${j.job_id} <${State} state=${j.state} /></h2>
    <div class="actions">
      ${['Submitted', 'Running', 'Pause'].includes(j.state) ? html`<button class="danger" data-action="cancel" onClick=${cancel}>${t('cancel')}</button>` : null}
      ${j.state === 'Failed' ? html`<button data-action="retry" onClick=${retry} title=${t('retryHelp')}>${t('retry')}</button>` : null}
    </div>
    <${ErrorLine} error=${actionError} />
    <dl class="facts">
      <dt>${t('tag')}</dt><dd>${j.tag}</dd>
      <dt>${t('state')}</dt><dd><${State} state=${j.state} /> <${Progress} value=${j.progress} state=${j.state} /></dd>
      <dt>${t('bucket')}</dt><dd class="mono">${j.bucket}</dd>
      <dt>${t('queue')}</dt><dd class="mono"><a href=${`#/jobs?queue=${j.queue_id}`}>${j.queue_id}</a></dd>
      <dt>${t('input')}</dt><dd class="mono">${j.input_object || '-'}</dd>
      <dt>${t('attempts')}</dt><dd>${j.attempts} / ${j.max_attempts}</dd>
      <dt>${t('worker')}</dt><dd class="mono">${j.worker ?? '-'}</dd>
      <dt>${t('created')}</dt><dd><${Time} iso=${j.created_at} ci=${j.ci_times.created} /></dd>
      <dt>${t('started')}</dt><dd><${Time} iso=${j.started_at} ci=${j.ci_times.started} /></dd>
      <dt>${t('ended')}</dt><dd><${Time} iso=${j.ended_at} ci=${j.ci_times.ended} /></dd>
      ${j.code && j.code !== 'Success' ? html`<dt>${t('code')}</dt><dd class="bad">${j.code}</dd><dt>${t('message')}</dt><dd>${j.message}</dd>` : null}
    </dl>
    <h3>${t('timeline')}</h3>
    <ol class="timeline">${data.timeline.map((p) => html`<li><${Time} iso=${p.at} ci=${p.ci} /> <strong>${p.what}</strong> ${p.detail ?? ''}</li>`)}</ol>
    ${data.attempts?.length ? html`<table class="list" data-testid="job-attempts" title=${t('attemptStates')}>
      <thead><tr><th>#</th><th>${t('worker')}</th><th>${t('started')}</th><th>${t('ended')}</th><th>${t('state')}</th><th>${t('message')}</th></tr></thead>
      <tbody>${data.attempts.map((a) => html`<tr data-attempt=${a.attempt} data-worker=${a.worker ?? ''} data-state=${a.state}>
        <td>${a.attempt}</td><td class="mono">${a.worker ?? '-'}</td><td><${Time} iso=${a.started_at} /></td><td><${Time} iso=${a.ended_at} /></td>
        <td><${State} state=${a.state} /></td><td>${[a.code, a.message].filter(Boolean).join(': ')}</td></tr>`)}</tbody></table>` : null}
    ${data.outputs.length ? html`<h3>${t('outputs')}</h3><ul>${data.outputs.map((o) => html`<li><a class="mono" href=${`/console/api/objects?${new URLSearchParams({ bucket: o.bucket, key: o.key })}`}>${o.bucket}/${o.key}</a> <span class="muted">${o.size} B</span></li>`)}</ul>` : null}
    <h3>${t('deliveries')}</h3>
    ${data.deliveries.length === 0 ? html`<p class="muted">${t('noDeliveries')}</p>` : data.deliveries.map((d) => html`<div class="card delivery" data-delivery-id=${d.delivery_id}>
      <p><span class="mono">${d.delivery_id}</span> → <span class="mono">${d.url}</span> <span class=${`state state-${d.state}`}>${d.state}</span>
        <button class="secondary" data-action="redeliver" onClick=${() => redeliver(d.delivery_id)}>${t('redeliver')}</button></p>
      <table class="list"><tbody>${d.attempts.map((a) => html`<tr><td>#${a.attempt}</td><td><${Time} iso=${a.at} /></td><td class=${a.http_status >= 200 && a.http_status < 300 ? 'ok' : 'bad'}>${a.http_status ?? ''} ${a.error ?? ''}</td><td>${a.latency_ms} ms</td></tr>`)}</tbody></table>
    </div>`)}
    <h3>${data.xml ? t('jobsDetail') : t('taskJson')}</h3>
    <pre class="code" data-testid="job-document">${data.xml ? prettyXml(data.xml) : JSON.stringify(data.task, null, 2)}</pre>
    <p class="muted small">${t('queryMs', { ms: data.query_ms })}</p>
  </section>`;
}

// ---- Queues ----------------------------------------------------------------

function QueueTable({ queues, readonly, onChanged }) {
  const [error, setError] = useState();
  const act = async (q, body) => {
    setError(undefined);
    try { await api(`queues/${q.queue_id}`, { method: 'POST', body }); onChanged?.(); } catch (e) { setError(e); }
  };
  const saveMax = (q) => (e) => {
    e.preventDefault();
    act(q, { maxConcurrent: Number(e.target.max.value) });
  };
  return html`<div>
    <${ErrorLine} error=${error} />
    <table class="list queues">
      <thead><tr><th>${t('name')}</th><th>${t('bucket')}</th><th>${t('state')}</th><th>${t('maxConcurrent')}</th><th>${t('running')}</th><th>${t('waiting')}</th><th>${t('paused')}</th><th>${t('oldestWaiting')}</th>${readonly ? null : html`<th>${t('notify')}</th><th></th>`}</tr></thead>
      <tbody>${queues.map((q) => html`<tr key=${q.queue_id} data-queue-id=${q.queue_id} data-state=${q.state}>
        <td><a href=${`#/jobs?queue=${q.queue_id}`}>${q.name}</a><div class="mono small muted">${q.queue_id}</div></td>
        <td class="mono">${q.bucket}</td>
        <td><span class=${`state state-${q.state}`}>${q.state}</span></td>
        <td>${readonly ? q.max_concurrent : html`<form class="inline" onSubmit=${saveMax(q)}><input name="max" type="number" min="1" max="10000" value=${q.max_concurrent} size="4" /><button class="secondary" type="submit">${t('save')}</button></form>`}</td>
        <td>${q.running}</td><td>${q.waiting}</td><td>${q.paused}</td><td>${seconds(q.oldest_waiting_s)}</td>
        ${readonly ? null : html`<td class="small mono ellipsis" title=${JSON.stringify(q.notify_config)}>${q.notify_config?.State === 'On' ? `${q.notify_config.Url ?? ''} (${q.notify_config.Event ?? ''})` : 'Off'}</td>
        <td>${q.state === 'Active'
          ? html`<button data-action="pause" onClick=${() => act(q, { state: 'Paused' })}>${t('pause')}</button>`
          : html`<button data-action="resume" onClick=${() => act(q, { state: 'Active' })}>${t('resume')}</button>`}</td>`}
      </tr>`)}</tbody>
    </table>
    ${queues.length === 0 ? html`<p class="muted">${t('none')}</p>` : null}
  </div>`;
}

function Queues() {
  const [data, error, reload] = useLoad(() => api('queues'), []);
  const throttled = useThrottled(reload, 500);
  useFeed((type) => { if (type === 'queues' || type === 'jobs' || type === 'hello') throttled(); });
  return html`<section data-testid="queues"><${ErrorLine} error=${error} />${data && html`<${QueueTable} queues=${data.queues} onChanged=${reload} />`}</section>`;
}

// ---- Workers ---------------------------------------------------------------

function Workers() {
  const [data, error, reload] = useLoad(() => api('workers'), []);
  const throttled = useThrottled(reload, 1000);
  useFeed((type) => { if (type === 'jobs') throttled(); });
  // Heartbeats are not in the feed: "last seen" and gone workers are read again every 5 s while this page is open.
  useEffect(() => { const id = setInterval(reload, 5000); return () => clearInterval(id); }, []);
  return html`<section data-testid="workers"><${ErrorLine} error=${error} />${data && html`<table class="list">
    <thead><tr><th>${t('worker')}</th><th>${t('kind')}</th><th>${t('host')}</th><th>${t('types')}</th><th>${t('slots')}</th><th>${t('runningJobs')}</th><th>${t('started')}</th><th>${t('lastSeen')}</th></tr></thead>
    <tbody>${data.workers.map((w) => html`<tr class=${w.state === 'gone' ? 'gone' : ''} data-worker-id=${w.worker_id}>
      <td class="mono">${w.worker_id} ${w.state === 'gone' ? html`<span class="pill">${t('gone')}</span>` : null}</td>
      <td>${w.kind}</td><td class="mono">${w.host ?? '-'}${w.pid ? ` / ${w.pid}` : ''}</td>
      <td class="small">${w.task_types.join(', ')}</td><td>${w.concurrency ?? '-'}</td>
      <td>${w.running.map((r) => html`<div><a class="mono small" href=${`#/jobs/${r.job_id}`}>${r.task_type} ${r.job_id.slice(0, 9)}…</a> <${Progress} value=${r.progress} state="Running" /></div>`)}</td>
      <td><${Time} iso=${w.started_at} /></td><td><${Time} iso=${w.last_seen_at} /></td>
    </tr>`)}</tbody></table>`}</section>`;
}

// ---- Apps ------------------------------------------------------------------

function Apps() {
  const [data, error, reload] = useLoad(() => api('apps'), []);
  const [shown, setShown] = useState();
  const [actionError, setActionError] = useState();
  const run = async (fn) => {
    setActionError(undefined);
    try { const app = await fn(); if (app?.secret_key) setShown(app); reload(); } catch (e) { setActionError(e); }
  };
  const create = (e) => {
    e.preventDefault();
    const name = e.target.name.value.trim();
    run(() => api('apps', { method: 'POST', body: { name } }));
    e.target.reset();
  };
  return html`<section data-testid="apps">
    <form class="filters" onSubmit=${create}><label>${t('newApp')}<input name="name" required maxlength="64" /></label><button type="submit" data-action="create-app">${t('create')}</button></form>
    <${ErrorLine} error=${actionError || error} />
    ${shown && html`<div class="card keys" data-testid="new-keys">
      <p><strong>${t('keysOnce', { name: shown.name })}</strong></p>
      <dl class="facts"><dt>SecretId</dt><dd class="mono">${shown.secret_id}</dd><dt>SecretKey</dt><dd class="mono" data-testid="secret-key">${shown.secret_key}</dd><dt>app_key</dt><dd class="mono">${shown.app_key}</dd><dt>APPID</dt><dd class="mono">${shown.appid}</dd><dt>${t('bucket')}</dt><dd class="mono">${shown.bucket}</dd></dl>
    </div>`}
    ${data && html`<table class="list">
      <thead><tr><th>${t('name')}</th><th>APPID</th><th>${t('bucket')}</th><th>SecretId</th><th>${t('created')}</th><th></th></tr></thead>
      <tbody>${data.apps.map((a) => html`<tr class=${a.disabled ? 'gone' : ''} data-app-id=${a.app_id} data-app-name=${a.name}>
        <td>${a.name} ${a.disabled ? html`<span class="pill">${t('disabled')}</span>` : null}</td><td class="mono"><a href=${`#/jobs?app=${a.appid}`}>${a.appid}</a></td><td class="mono">${a.bucket}</td><td class="mono">${a.secret_id}</td><td><${Time} iso=${a.created_at} /></td>
        <td>${a.disabled ? null : html`<button class="secondary" onClick=${() => confirmed(t('confirmRotate')) && run(() => api(`apps/${a.app_id}/rotate`, { method: 'POST' }))}>${t('rotate')}</button>
          <button class="danger" onClick=${() => confirmed(t('confirmDisable')) && run(() => api(`apps/${a.app_id}/disable`, { method: 'POST' }))}>${t('disable')}</button>`}</td>
      </tr>`)}</tbody></table>`}
  </section>`;
}

// ---- Callbacks -------------------------------------------------------------

function Callbacks({ query }) {
  const state = parseQuery(query).state ?? 'Pending';
  const [data, error, reload] = useLoad(() => api(`callbacks?state=${state}`), [state]);
  const [actionError, setActionError] = useState();
  const throttled = useThrottled(reload, 1000);
  useFeed((type) => { if (type === 'deliveries') throttled(); });
  const redeliver = async (id) => {
    setActionError(undefined);
    try { await api(`callbacks/${id}/redeliver`, { method: 'POST' }); reload(); } catch (e) { setActionError(e); }
  };
  const tabs = [['Pending', t('pending')], ['GivenUp', t('givenUp')], ['Delivered', t('delivered')]];
  return html`<section data-testid="callbacks">
    <nav class="tabs">${tabs.map(([s, label]) => html`<a class=${s === state ? 'active' : ''} href=${`#/callbacks?state=${s}`}>${label}</a>`)}</nav>
    <${ErrorLine} error=${actionError || error} />
    ${data && html`<table class="list"><thead><tr><th>Id</th><th>${t('job')}</th><th>${t('url')}</th><th>${t('attempts')}</th><th>${t('lastResult')}</th><th>${state === 'Pending' ? t('nextAttempt') : t('created')}</th><th></th></tr></thead>
      <tbody>${data.deliveries.map((d) => html`<tr data-delivery-id=${d.delivery_id}>
        <td class="mono small">${d.delivery_id}</td><td class="mono small"><a href=${`#/jobs/${d.job_id}`}>${d.job_id}</a></td><td class="mono small ellipsis" title=${d.url}>${d.url}</td>
        <td>${d.attempts}</td><td class=${d.last_status >= 200 && d.last_status < 300 ? 'ok' : 'bad'}>${d.last_status ?? ''} ${d.last_error ?? ''}</td>
        <td><${Time} iso=${state === 'Pending' ? d.next_attempt_at : d.created_at} /></td>
        <td><button class="secondary" data-action="redeliver" onClick=${() => redeliver(d.delivery_id)}>${t('redeliver')}</button></td>
      </tr>`)}</tbody></table>${data.deliveries.length === 0 ? html`<p class="muted">${t('none')}</p>` : null}`}
  </section>`;
}

// ---- Shell -----------------------------------------------------------------

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Theme() {
  const [theme, setTheme] = useState(localStorage.getItem('mj-theme') ?? 'auto');
  useEffect(() => {
    if (theme === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    localStorage.setItem('mj-theme', theme);
  }, [theme]);
  const next = { auto: 'dark', dark: 'light', light: 'auto' }[theme];
  return html`<button class="secondary small" title=${t('theme')} onClick=${() => setTheme(next)}>${{ auto: '◐', dark: '☾', light: '☀' }[theme]}</button>`;
}

function Live() {
  const [up, setUp] = useState(connected);
  // Synced once mounted too: the stream may have said hello between the first render and this effect.
  useEffect(() => { connectionListeners.add(setUp); setUp(connected); return () => connectionListeners.delete(setUp); }, []);
  return html`<span class=${`live ${up ? 'up' : 'down'}`} data-testid="live">${up ? t('live') : t('offline')}</span>`;
}

function App() {
  const [session, setSession] = useState();
  const [checked, setChecked] = useState(false);
  const hash = useHash();
  const load = () => api('session').then((s) => { csrf = s.csrf; setSession(s); openFeed(); }, () => setSession(undefined)).finally(() => setChecked(true));
  useEffect(() => {
    load();
    const out = () => { closeFeed(); setSession(undefined); };
    window.addEventListener('mj-logged-out', out);
    return () => window.removeEventListener('mj-logged-out', out);
  }, []);
  if (!checked) return null;
  if (!session || /(?:^#|&)token=/.test(location.hash)) return html`<${Login} onLogin=${load} />`;
  const [path, query = ''] = hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const page = parts[0] ?? 'overview';
  const logout = async () => { await api('logout', { method: 'POST' }).catch(() => undefined); closeFeed(); setSession(undefined); };
  const nav = [['overview', t('overview')], ['jobs', t('jobs')], ['queues', t('queues')], ['workers', t('workers')], ...(session.kind === 'admin' ? [['apps', t('apps')]] : []), ['callbacks', t('callbacks')]];
  let view;
  if (page === 'jobs' && parts[1]) view = html`<${JobDetail} jobId=${parts[1]} />`;
  else if (page === 'jobs') view = html`<${Jobs} query=${query} session=${session} />`;
  else if (page === 'queues') view = html`<${Queues} />`;
  else if (page === 'workers') view = html`<${Workers} />`;
  else if (page === 'apps' && session.kind === 'admin') view = html`<${Apps} />`;
  else if (page === 'callbacks') view = html`<${Callbacks} query=${query} />`;
  else view = html`<${Overview} />`;
  return html`<div class="shell">
    <header>
      <a class="brand" href="#/overview">mediajobs</a>
      <nav>${nav.map(([id, label]) => html`<a href=${`#/${id}`} class=${page === id ? 'active' : ''} data-nav=${id}>${label}</a>`)}</nav>
      <span class="spacer"></span>
      <${Live} />
      <span class="muted small">${session.kind === 'admin' ? 'admin' : `${session.app.name} (${session.app.appid})`}</span>
      <${Theme} />
      <button class="secondary small" onClick=${logout}>${t('logout')}</button>
    </header>
    <main>${view}</main>
  </div>`;
}

document.title = t('title');
render(html`<${App} />`, document.getElementById('root'));
