/** The README's configuration table and .env.example are what the schema in src/config.ts generates. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import { ENV_EXAMPLE_PATH, README_PATH, envVariables, renderEnvExample, renderReadmeTable, ungroupedVariables, updateReadme } from '../../scripts/config-reference.js';

const regenerate = 'run `npm run docs:config`';

describe('configuration reference', () => {
  test('every variable has a description and sits in exactly one group', () => {
    const variables = envVariables();
    assert.ok(variables.length >= 50, `only ${variables.length} variables found`);
    const undescribed = variables.filter((v) => !v.description?.trim()).map((v) => v.name);
    assert.deepEqual(undescribed, [], `variables without a description (.meta({ description }) in src/config.ts): ${undescribed.join(', ')}`);
    assert.deepEqual(ungroupedVariables(), [], 'envGroups and envSchema list different variables');
  });

  test('the README table is the generated one', () => {
    const readme = fs.readFileSync(README_PATH, 'utf8');
    assert.equal(updateReadme(readme), readme, `README.md differs from src/config.ts: ${regenerate}`);
    // And the table really is there, with every variable and its default.
    const table = renderReadmeTable();
    assert.ok(readme.includes(table));
    assert.match(table, /^\| `ACCESS_TOKEN_TTL` \| `600` \| access token lifetime/m);
    assert.match(table, /^\| `DATABASE_URL` \| unset: embedded PGlite/m);
  });

  test('.env.example is the generated one', () => {
    assert.equal(fs.readFileSync(ENV_EXAMPLE_PATH, 'utf8'), renderEnvExample(), `.env.example differs from src/config.ts: ${regenerate}`);
  });

  test('.env.example names every variable once, commented, with its default', () => {
    const example = renderEnvExample();
    for (const v of envVariables()) {
      const lines = example.split('\n').filter((l) => l.startsWith(`# ${v.name}=`));
      assert.equal(lines.length, 1, `${v.name} appears ${lines.length} times`);
      if (v.default !== undefined) assert.ok(lines[0]!.includes(v.default), `${v.name}: default ${v.default} missing`);
    }
    assert.match(example, /^# BRAND_COLOR="#4f46e5"$/m, 'a value with # is quoted');
  });

  test('a changed description or default makes the generated text differ', () => {
    const variables = envVariables();
    const changed = variables.map((v) => (v.name === 'PORT' ? { ...v, default: '3999', description: 'another description' } : v));
    assert.notEqual(renderReadmeTable(changed), renderReadmeTable(variables));
    assert.notEqual(renderEnvExample(changed), renderEnvExample(variables));
  });
});
