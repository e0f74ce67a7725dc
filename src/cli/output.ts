/**
 * The two output modes. Human mode prints short lines and aligned tables; `--json` prints
 * exactly one JSON document on stdout so scripts can pipe it straight into `jq`.
 */
import { humanErrorMessage, renderCliError } from './errors.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whole of stdin as UTF-8 (used by --password-stdin). */
  readStdin(): Promise<string>;
}

export interface Column<T> {
  header: string;
  value(row: T): string | number | boolean | null | undefined;
}

export class Output {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** Emits a command's result; `human` is only evaluated in human mode. */
  result(json: unknown, human: () => string | string[]): void {
    if (this.json) {
      this.io.stdout(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      const lines = human();
      this.io.stdout(`${Array.isArray(lines) ? lines.join('\n') : lines}\n`);
    }
  }

  /** A listing: `{"<key>": rows}` in JSON, a table otherwise. */
  list<T>(key: string, rows: T[], columns: Column<T>[]): void {
    this.result({ [key]: rows }, () => (rows.length ? formatTable(rows, columns) : `no ${key}`));
  }
}

export function formatTable<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ');
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

function cell(v: string | number | boolean | null | undefined): string {
  return v === null || v === undefined || v === '' ? '-' : String(v);
}

/** Errors go to stderr in the same mode as the output: `veil: <message>` or one JSON line. Returns the exit code. */
export function reportError(io: CliIo, json: boolean, err: unknown): number {
  const { report, exitCode } = renderCliError(err);
  if (json) io.stderr(`${JSON.stringify(report)}\n`);
  else io.stderr(`veil: ${humanErrorMessage(err)}\n`);
  return exitCode;
}
