// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/sim-out/**', '**/.services/**', '**/public/vendor/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    files: ['packages/engine/src/**/*.ts', 'packages/scheduler/src/**/*.ts', 'packages/adapter-*/src/**/*.ts'],
    ignores: ['**/*.test.ts', '**/testing/**', '**/node/**'],
    rules: { 'no-console': 'error' },
  },
  {
    // the executables' plain-JS launchers run on Node
    files: ['**/bin/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
)
