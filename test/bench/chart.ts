/**
 * The benchmark's chart: the recovery-time distribution (empirical CDF) of kvguard and of the SDK's
 * default poll interval, against the fixed floor, drawn as a self-contained SVG from the results.
 */

export interface RecoveryChartInput {
  kvguardMs: number[];
  sdkDefaultMs: number[];
  floorMs: number;
  goalMs: number;
  p50Ms: number;
  sdkDefaultP50Ms: number;
  title: string;
}

const W = 760;
const H = 420;
const M = { left: 60, right: 20, top: 40, bottom: 90 };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A step line through the empirical CDF of `values` (sorted ascending). */
function cdfPath(values: number[], x: (ms: number) => number, y: (p: number) => number): string {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return '';
  let d = `M ${x(sorted[0]!).toFixed(1)} ${y(0).toFixed(1)}`;
  sorted.forEach((v, i) => {
    d += ` L ${x(v).toFixed(1)} ${y(i / sorted.length).toFixed(1)}`;
    d += ` L ${x(v).toFixed(1)} ${y((i + 1) / sorted.length).toFixed(1)}`;
  });
  return d;
}

export function recoveryChart(input: RecoveryChartInput): string {
  const all = [...input.kvguardMs, ...input.sdkDefaultMs, input.floorMs, input.goalMs];
  const maxMs = Math.max(...all) * 1.05;
  // A log scale keeps both distributions readable (hundreds of ms and seconds).
  const minMs = 100;
  const lx = (ms: number) => Math.log10(Math.max(ms, minMs));
  const x = (ms: number) =>
    M.left + ((lx(ms) - lx(minMs)) / (lx(maxMs) - lx(minMs))) * (W - M.left - M.right);
  const y = (p: number) => H - M.bottom - p * (H - M.top - M.bottom);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(input.title)}</text>`,
  );
  // Axes and grid.
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(p)}" y2="${y(p)}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${y(p) + 4}" text-anchor="end">${Math.round(p * 100)}%</text>`,
    );
  }
  for (const ms of [100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000]) {
    if (ms > maxMs) continue;
    parts.push(
      `<line x1="${x(ms)}" x2="${x(ms)}" y1="${M.top}" y2="${H - M.bottom}" stroke="#f0f0f0"/>`,
      `<text x="${x(ms)}" y="${H - M.bottom + 16}" text-anchor="middle">${ms}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle">recovery time: signal delivered → primary alert received by the alerts topic (ms, log scale)</text>`,
    `<text x="16" y="${(M.top + H - M.bottom) / 2}" transform="rotate(-90 16 ${(M.top + H - M.bottom) / 2})" text-anchor="middle">share of incidents</text>`,
  );
  // Reference lines: the floor and the goal (1.5 × floor).
  const vline = (ms: number, color: string, label: string, dy: number) =>
    parts.push(
      `<line x1="${x(ms)}" x2="${x(ms)}" y1="${M.top}" y2="${H - M.bottom}" stroke="${color}" stroke-dasharray="5 4"/>`,
      `<text x="${x(ms) + 4}" y="${M.top + dy}" fill="${color}">${esc(label)}</text>`,
    );
  vline(input.floorMs, '#2e7d32', `floor ${input.floorMs} ms`, 12);
  vline(input.goalMs, '#f9a825', `goal ≤ ${input.goalMs} ms (p50)`, 28);
  // The two distributions.
  parts.push(
    `<path d="${cdfPath(input.kvguardMs, x, y)}" fill="none" stroke="#1565c0" stroke-width="2"/>`,
    `<path d="${cdfPath(input.sdkDefaultMs, x, y)}" fill="none" stroke="#c62828" stroke-width="2"/>`,
  );
  const legend = [
    {
      color: '#1565c0',
      text: `kvguard (n=${input.kvguardMs.length}, p50 ${Math.round(input.p50Ms)} ms)`,
    },
    {
      color: '#c62828',
      text: `SDK default 2 s poll (n=${input.sdkDefaultMs.length}, p50 ${Math.round(input.sdkDefaultP50Ms)} ms)`,
    },
  ];
  // The legend goes below the axis, where no curve runs.
  legend.forEach((l, i) => {
    const ly = H - 30 + i * 18;
    const lx0 = M.left;
    parts.push(
      `<line x1="${lx0}" x2="${lx0 + 24}" y1="${ly}" y2="${ly}" stroke="${l.color}" stroke-width="2"/>`,
      `<text x="${lx0 + 30}" y="${ly + 4}">${esc(l.text)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
