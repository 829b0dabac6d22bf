// keyward browser app: the administrators' overview at the top of the admin
// panel. Live sessions, users and banned users, and per hour over the last
// day: sign-ins, failed sign-ins, reuse detections and revocations, each
// drawn as a small bar chart (SVG made here, no library), with the same
// numbers as a table for screen readers and anyone who prefers text.
//
// One export, `loadOverview(get)`: `get(path)` answers the parsed JSON of an
// authenticated GET (the app's own request helper). It fills `#overview`.

const SVG = 'http://www.w3.org/2000/svg';
const HOURS = 24;

// The series drawn, in order: field of /admin/stats, label, CSS class.
const SERIES = [
  ['logins', 'Sign-ins', 'series-logins'],
  ['failed_logins', 'Failed sign-ins', 'series-failed'],
  ['reuse_detected', 'Reuse detections', 'series-reuse'],
  ['revocations', 'Revocations', 'series-revocations'],
];

// The chart's own coordinate system; the SVG scales to its box's width.
const W = 480;
const H = 80;
const AXIS = 1; // the baseline under the bars

const $ = (id) => document.getElementById(id);

function node(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  for (const c of children) n.append(c);
  return n;
}

const hourLabel = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
const number = (n) => Number(n || 0).toLocaleString();

// One series as bars, one per hour; the title of each bar says its numbers.
function chart(hours, field, label, cls) {
  const values = hours.map((h) => Number(h[field]) || 0);
  const total = values.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...values);
  const peak = values.indexOf(Math.max(...values));
  const summary = total === 0
    ? `${label}: none in the last ${hours.length} hours.`
    : `${label}: ${number(total)} in the last ${hours.length} hours, most (${number(values[peak])}) in the hour from ${hourLabel(hours[peak].hour)}.`;
  const slot = W / values.length;
  const plot = H - AXIS;
  const bars = values.map((v, i) => {
    const height = v === 0 ? 0 : Math.max(2, (v / max) * (plot - 4));
    return svg('rect', {
      class: `bar ${cls}`, x: (i * slot + slot * 0.15).toFixed(1), y: (plot - height).toFixed(1),
      width: (slot * 0.7).toFixed(1), height: height.toFixed(1),
    }, svg('title', {}, `${hourLabel(hours[i].hour)}: ${number(v)}`));
  });
  // Hour labels (HTML, so they keep their size however wide the chart is
  // drawn) under the first, middle and last bar: enough to read the time
  // axis at phone width without crowding it.
  const ticks = node('div', { class: 'ticks', 'aria-hidden': 'true' },
    ...[0, Math.floor(values.length / 2), values.length - 1]
      .filter((i, k, all) => all.indexOf(i) === k)
      .map((i) => node('span', {}, hourLabel(hours[i].hour))));
  const id = `overview-chart-${field}`;
  const figure = svg('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-labelledby': `${id}-title`, id,
  }, svg('title', { id: `${id}-title` }, summary),
  svg('line', { class: 'baseline', x1: 0, x2: W, y1: plot, y2: plot }), ...bars);
  return node('figure', { class: 'chart-box', 'data-series': field },
    node('figcaption', {}, node('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), `${label} `,
      node('strong', { class: 'chart-total' }, number(total)), node('span', { class: 'muted small' }, ` · peak ${number(values[peak] || 0)}/h`)),
    figure, ticks);
}

// The same numbers as a table: the charts' text alternative.
function table(hours) {
  const head = node('tr', {}, node('th', { scope: 'col' }, 'Hour'),
    ...SERIES.map(([, label]) => node('th', { scope: 'col' }, label)));
  const rows = hours.slice().reverse().map((h) => node('tr', {},
    node('th', { scope: 'row', class: 'nowrap' }, hourLabel(h.hour)),
    ...SERIES.map(([field]) => node('td', {}, number(h[field])))));
  return node('details', { class: 'overview-table' },
    node('summary', {}, 'Show these numbers as a table'),
    node('div', { class: 'table-wrap' },
      node('table', { class: 'events' },
        node('caption', { class: 'muted small' }, 'Per hour, newest first'),
        node('thead', {}, head), node('tbody', {}, ...rows))));
}

function tile(id, label, value) {
  return node('div', { class: 'tile', id },
    node('span', { class: 'tile-value' }, number(value)), node('span', { class: 'tile-label' }, label));
}

/** Fetches /admin/stats and draws the overview into #overview. */
export async function loadOverview(get) {
  const box = $('overview-body');
  if (!box) return;
  const data = await get(`/admin/stats?hours=${HOURS}`);
  if (!data || !Array.isArray(data.hours)) return;
  box.replaceChildren(
    node('div', { class: 'tiles' },
      tile('overview-live', 'live sessions', data.live_sessions),
      tile('overview-users', 'users', data.users),
      tile('overview-banned', 'banned users', data.banned_users)),
    node('div', { class: 'charts' }, ...SERIES.map(([field, label, cls]) => chart(data.hours, field, label, cls))),
    table(data.hours));
  box.dataset.loaded = 'true';
}

/** Empties the overview (sign-out: nothing of one sign-in stays for the next). */
export function clearOverview() {
  const box = $('overview-body');
  if (!box) return;
  box.replaceChildren();
  delete box.dataset.loaded;
}
