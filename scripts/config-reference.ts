/**
 * The configuration reference, rendered from the zod schema in src/config.ts: the table between
 * the README's config markers and the whole of `.env.example`. `npm run docs:config` rewrites
 * both; test/unit/config-reference.test.ts fails when either has drifted from the schema.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { envGroups, envSchema, type EnvMeta } from '../src/config.js';

export const README_START = '<!-- config:start -->';
export const README_END = '<!-- config:end -->';

export interface EnvVariable {
  name: string;
  group: string;
  /** The default as the environment would spell it; undefined: the variable has none. */
  default: string | undefined;
  description: string | undefined;
  unset: string | undefined;
  example: string | undefined;
}

/** Every variable of the schema, grouped and ordered as `envGroups` lists them. */
export function envVariables(): EnvVariable[] {
  return Object.entries(envGroups).flatMap(([group, shape]) =>
    Object.entries(shape as Record<string, z.ZodType>).map(([name, schema]) => {
      const meta = (schema.meta() ?? {}) as Partial<EnvMeta>;
      return {
        name,
        group,
        default: schema instanceof z.ZodDefault ? String(schema.def.defaultValue) : undefined,
        description: meta.description,
        unset: meta.unset,
        example: meta.example,
      };
    }),
  );
}

/** Variables in the schema that no group lists, or that a group lists but the schema lacks. */
export function ungroupedVariables(): string[] {
  const grouped = envVariables().map((v) => v.name);
  const inSchema = Object.keys(envSchema.shape);
  return [...inSchema.filter((n) => !grouped.includes(n)), ...grouped.filter((n) => !inSchema.includes(n))];
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderReadmeTable(variables = envVariables()): string {
  const rows = variables.map((v) => {
    const dflt = v.default !== undefined ? `\`${v.default}\`` : v.unset ? `unset: ${v.unset}` : 'unset';
    return `| \`${v.name}\` | ${cell(dflt)} | ${cell(v.description ?? '')} |`;
  });
  return [
    '<!-- Generated from the descriptions in src/config.ts by `npm run docs:config`: edit them there. -->',
    '',
    '| variable | default | meaning |',
    '| --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The README with the text between the config markers replaced by the generated table. */
export function updateReadme(readme: string, table = renderReadmeTable()): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start === -1 || end < start) throw new Error(`README.md: the markers ${README_START} and ${README_END} are missing`);
  return `${readme.slice(0, start + README_START.length)}\n${table}\n${readme.slice(end)}`;
}

/** Markdown to plain comment text: links keep their words. */
const plain = (text: string) => text.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1');

function wrap(text: string, width = 98): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** A value as `.env` must spell it: quoted when an unquoted form would be cut at `#` or a space. */
const envValue = (value: string) => (/[#\s"']/.test(value) ? `"${value}"` : value);

export function renderEnvExample(variables = envVariables()): string {
  const out = [
    '# Veil configuration. Copy to `.env` (git-ignored) and uncomment what you change.',
    '# Generated from src/config.ts by `npm run docs:config`: edit the descriptions there.',
    '# A variable already set in the environment wins over `.env`. Any wrong value stops start-up',
    '# with a message naming the variable. An empty value (e.g. `DATABASE_URL=`) counts as unset',
    '# where the default is "unset" (except VEIL_MASTER_KEY and VEIL_MASTER_KEY_FILE); elsewhere it',
    '# is a value, usually refused. So leave unused lines commented.',
  ];
  let group: string | undefined;
  for (const v of variables) {
    if (v.group !== group) {
      group = v.group;
      out.push('', `# --- ${group} `.padEnd(92, '-'));
    }
    const description = plain(v.description ?? '');
    const text = `${description.charAt(0).toUpperCase()}${description.slice(1)}.${v.default === undefined && v.unset ? ` Unset: ${plain(v.unset)}.` : ''}`;
    out.push(...wrap(text).map((l) => `# ${l}`));
    out.push(`# ${v.name}=${envValue(v.default ?? v.example ?? '')}`);
  }
  return `${out.join('\n')}\n`;
}

const root = path.resolve(import.meta.dirname, '..');
export const README_PATH = path.join(root, 'README.md');
export const ENV_EXAMPLE_PATH = path.join(root, '.env.example');

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const missing = envVariables()
    .filter((v) => !v.description)
    .map((v) => v.name);
  const stray = ungroupedVariables();
  if (missing.length || stray.length) {
    if (missing.length) console.error(`config-reference: no description for ${missing.join(', ')}`);
    if (stray.length) console.error(`config-reference: not in exactly one of envGroups and envSchema: ${stray.join(', ')}`);
    process.exit(1);
  }
  fs.writeFileSync(README_PATH, updateReadme(fs.readFileSync(README_PATH, 'utf8')));
  fs.writeFileSync(ENV_EXAMPLE_PATH, renderEnvExample());
  console.log('config-reference: README.md and .env.example regenerated from src/config.ts');
}
