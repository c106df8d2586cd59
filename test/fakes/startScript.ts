/**
 * The node flags of package.json's `start` script (`exec node <flags> dist/main.js`), so that the
 * benchmarks and the fault-injection suite run the built program exactly as `npm start` does.
 * A start script of another shape is an error here, not a silent run without the flags.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

export const startScriptNodeFlags = (root: string): ReadonlyArray<string> => {
  const packageJson: { readonly scripts?: { readonly start?: string } } = JSON.parse(
    Fs.readFileSync(Path.join(root, "package.json"), "utf8")
  )
  const start = packageJson.scripts?.start ?? ""
  const match = /^exec node((?: --\S+)*) dist\/main\.js$/.exec(start)
  if (match === null) throw new Error(`cannot read the node flags from the start script ${JSON.stringify(start)}`)
  return (match[1] ?? "").split(" ").filter((flag) => flag.length > 0)
}
