/** ShownUrl: what logs and replies print of a URL that may carry secrets. */
import { describe, expect, it } from "@effect/vitest"
import { shownUrl } from "../../src/domain/ShownUrl.js"

describe("shownUrl", () => {
  it.each([
    ["http://127.0.0.1:8283", "http://127.0.0.1:8283"],
    ["https://api.letta.com/", "https://api.letta.com/"],
    ["https://letta.example/base/path", "https://letta.example/base/path"]
  ])("%s without secrets is shown as written", (url, shown) => {
    expect(shownUrl(url)).toBe(shown)
  })

  it.each([
    ["https://alice:s3cret@letta.example:8443/api", "https://redacted@letta.example:8443/api"],
    ["https://tokenonly@letta.example/", "https://redacted@letta.example/"],
    ["https://letta.example/?token=s3cret&team=a&team=b", "https://letta.example/?token=redacted&team=redacted"],
    ["https://bob:pw@letta.example/x?key=s3cret#frag", "https://redacted@letta.example/x?key=redacted"]
  ])("%s: credentials and query values are redacted", (url, shown) => {
    const text = shownUrl(url)
    expect(text).toBe(shown)
    expect(text).not.toMatch(/s3cret|alice|bob|pw@|tokenonly|frag/)
  })

  it("text that is not a URL is not printed", () => {
    expect(shownUrl("http://alice:s3cret@ host")).toBe("<not a URL>")
  })
})
