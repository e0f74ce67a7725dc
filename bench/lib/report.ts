/**
 * docs/BENCHMARKS.md is shared by several bench scripts: each owns one marked section
 * (`<!-- bench:NAME:begin -->` ... `<!-- bench:NAME:end -->`) and replaces only that, appending
 * it when absent, so the scripts can run in any order.
 */
import fs from 'node:fs/promises';

export async function writeSection(file: string, name: string, markdown: string): Promise<void> {
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  const next = i !== -1 && j > i ? `${text.slice(0, i)}${block}${text.slice(j + end.length)}` : `${text.trimEnd()}${text.trim() ? '\n\n' : ''}${block}\n`;
  await fs.writeFile(file, next);
}

/** A GitHub-flavoured markdown table. */
export function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** The same table as aligned plain text, for the terminal. */
export function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((v, c) => v.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
