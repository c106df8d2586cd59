// `npm run lint` checks (any problem fails it), `npm run format` fixes what can be fixed. Formatting is
// a lint rule: `@effect/dprint` runs dprint's TypeScript plugin from its npm package (no download),
// as Effect's own repositories do.
//
// Not type-aware: with type information the run took about 100 s on the shared 2-core machine
// (36 s of CPU) against about 25 s without; `tsc --noEmit` already checks the types.
import js from "@eslint/js"
import effect from "@effect/eslint-plugin"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

export default defineConfig(
  { ignores: ["dist/**", "coverage/**", "data/**"] },
  {
    files: ["src/**/*.ts", "test/**/*.ts", "bench/**/*.ts", "vitest.config.ts"],
    extends: [js.configs.recommended, tseslint.configs.recommended, effect.configs.dprint],
    rules: {
      // Effect's dprint settings, with the width and import order the code was written with
      // (130 columns; imports ordered by hand, not sorted).
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 130,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force",
          "module.sortImportDeclarations": "maintain",
          "module.sortExportDeclarations": "maintain",
          "importDeclaration.sortNamedImports": "maintain",
          "exportDeclaration.sortNamedExports": "maintain"
        }
      }],
      "@typescript-eslint/no-explicit-any": "error",
      // Either form is fine (`import type { A }` or `import { type A, b }`); a type-only name must say so.
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_",
        destructuredArrayIgnorePattern: "^_"
      }]
    }
  },
  // The house's floors: imports only point down (domain < services < programs | commands < layers < main).
  ...floors([
    ["src/domain/**/*.ts", ["services", "programs", "commands", "layers", "main.js"]],
    ["src/services/**/*.ts", ["programs", "commands", "layers", "main.js"]],
    ["src/programs/**/*.ts", ["layers", "main.js"]],
    ["src/commands/**/*.ts", ["programs", "layers", "main.js"]],
    ["src/layers/**/*.ts", ["main.js"]]
  ])
)

/** One `no-restricted-imports` block per floor: relative imports reaching a higher floor are errors. */
function floors(rules) {
  return rules.map(([files, above]) => ({
    files: [files],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: above.map((floor) => ({
          regex: floor === "main.js" ? String.raw`^(\.\./)+main\.js$` : String.raw`^(\.\./)+${floor}/`,
          message: `imports only point down: domain < services < programs | commands < layers < main (${floor} is above this file)`
        }))
      }]
    }
  }))
}
