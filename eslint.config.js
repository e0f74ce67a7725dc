// ESLint flat config: typescript-eslint's recommended rules with type information (the whole
// run takes about 20 s here), eslint-config-prettier last so no rule fights Prettier's layout.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'packages/*/dist/', 'src/generated/', 'node_modules/', '.veil-data/', 'keys/', 'coverage/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      // One program per tsconfig: the server, the tests (which include src/ and bench/), each package.
      parserOptions: { project: ['./tsconfig.json', './test/tsconfig.json', './packages/*/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Off: async functions without await are deliberate here (interface implementations such
      // as the memory store and the adapter return promises, and a throw becomes a rejection).
      '@typescript-eslint/require-await': 'off',
      // `declare global { namespace Express ... }` is how Express's Request type is augmented.
      '@typescript-eslint/no-namespace': ['error', { allowDeclarations: true }],
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] }],
    },
  },
  {
    // Plain JavaScript and config files outside every tsconfig: syntax rules only.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs', 'prisma.config.ts'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  prettier,
);
