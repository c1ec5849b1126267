// A dependency-free SVG bar chart of service ÷ baseline ratios, with targets.
type Row = { scenario: string; c: number; ratio?: number; target?: number };

export function renderChart(rows: Row[]): string {
  const data = rows.filter((r) => r.ratio !== undefined);
  const barH = 22;
  const gap = 8;
  const left = 250;
  const width = 720;
  const scale = (width - left - 60) / 1.2; // ratio 1.2 fills the plot
  const height = 50 + data.length * (barH + gap) + 30;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const bars = data
    .map((r, i) => {
      const y = 40 + i * (barH + gap);
      const w = Math.max(1, Math.min(r.ratio!, 1.2) * scale);
      const ok = r.target === undefined || r.ratio! >= r.target;
      const target = r.target === undefined ? '' :
        `<line x1="${left + r.target * scale}" x2="${left + r.target * scale}" y1="${y - 3}" y2="${y + barH + 3}" stroke="#222" stroke-dasharray="3,2"/>`;
      return `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(`${r.scenario}, ${r.c} conn`)}</text>` +
        `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${ok ? '#2f7d32' : '#c62828'}"/>` +
        `<text x="${left + w + 6}" y="${y + 15}">${r.ratio!.toFixed(2)}</text>${target}`;
    })
    .join('\n');
  const axis = [0, 0.5, 1]
    .map((v) => `<line x1="${left + v * scale}" x2="${left + v * scale}" y1="34" y2="${height - 24}" stroke="#ccc"/>` +
      `<text x="${left + v * scale}" y="${height - 8}" text-anchor="middle">${v}</text>`)
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="12" y="20" font-size="14" font-weight="bold">Service ÷ same-run baseline (higher is better; dashed line = target)</text>
${axis}
${bars}
</svg>
`;
}
