// ESLint 9's settings for the page's scripts, app/static/*.js (scripts/test.sh runs `npx eslint@9 app/static`).
// Self-contained: no plugin or shared config to install, so npx fetches ESLint alone. The rules are the core ones
// of ESLint's "recommended" set, plus a few that catch what a script pasted into a page gets wrong.
const recommended = [
  "constructor-super", "for-direction", "getter-return", "no-async-promise-executor", "no-case-declarations",
  "no-class-assign", "no-compare-neg-zero", "no-cond-assign", "no-const-assign", "no-constant-binary-expression",
  "no-constant-condition", "no-control-regex", "no-debugger", "no-delete-var", "no-dupe-args", "no-dupe-class-members",
  "no-dupe-else-if", "no-dupe-keys", "no-duplicate-case", "no-empty", "no-empty-character-class", "no-empty-pattern",
  "no-ex-assign", "no-fallthrough", "no-func-assign", "no-global-assign", "no-import-assign", "no-invalid-regexp",
  "no-irregular-whitespace", "no-loss-of-precision", "no-misleading-character-class", "no-new-native-nonconstructor",
  "no-nonoctal-decimal-escape", "no-obj-calls", "no-octal", "no-prototype-builtins", "no-redeclare",
  "no-regex-spaces", "no-self-assign", "no-setter-return", "no-shadow-restricted-names", "no-sparse-arrays",
  "no-this-before-super", "no-undef", "no-unexpected-multiline", "no-unreachable", "no-unsafe-finally",
  "no-unsafe-negation", "no-unsafe-optional-chaining", "no-unused-labels", "no-unused-private-class-members",
  "no-unused-vars", "no-useless-backreference", "no-useless-catch", "no-useless-escape", "no-with", "require-yield",
  "use-isnan", "valid-typeof",
];
const extra = ["eqeqeq", "no-var", "prefer-const", "no-implicit-globals", "no-shadow"];
// What the scripts use of the browser (ECMAScript's own globals come with ecmaVersion).
const browser = [
  "window", "document", "console", "performance", "atob", "Event", "MutationObserver", "URLSearchParams",
  "requestAnimationFrame", "setTimeout", "queueMicrotask", "URL", "Blob",
];

module.exports = [
  // Third-party bundles (Plotly's release file) are kept as published, not linted as ours.
  {ignores: ["app/static/vendor/**"]},
  {
    files: ["app/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: Object.fromEntries(browser.map((name) => [name, "readonly"])),
    },
    linterOptions: {reportUnusedDisableDirectives: "error"},
    rules: Object.fromEntries([...recommended, ...extra].map((rule) => [rule, "error"])),
  },
];
