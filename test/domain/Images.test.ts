import { describe, expect, it } from "@effect/vitest"
import { chooseImages, discordCdnUrl, imageLimits, mediaTypeOf, notSentWording } from "../../src/domain/Images.js"

const cdn = (name: string) => `https://cdn.discordapp.com/attachments/1400000000000000001/1500000000000000001/${name}?ex=1&hm=ab`
const png = (name = "cat.png", size = 1234, url = cdn(name)) => ({ url, contentType: "image/png", size })
const on = { enabled: true }

describe("chooseImages: the rule", () => {
  it("png, jpeg, gif and webp are sent, in message order; other types are listed only", () => {
    const attachments = [
      { url: cdn("a.jpg"), contentType: "image/jpeg", size: 10 },
      { url: cdn("b.pdf"), contentType: "application/pdf", size: 10 },
      { url: cdn("c.gif"), contentType: "image/gif", size: 10 },
      { url: cdn("d.webp"), contentType: "image/webp", size: 10 },
      { url: cdn("e.svg"), contentType: "image/svg+xml", size: 10 },
      png("f.png")
    ]
    const choice = chooseImages(attachments, on)
    expect(choice.urls).toEqual([cdn("a.jpg"), cdn("c.gif"), cdn("d.webp"), cdn("f.png")])
    expect(choice.verdicts.map((v) => (v._tag === "Sent" ? "sent" : v.reason))).toEqual([
      "sent",
      "not-an-image",
      "sent",
      "sent",
      "not-an-image",
      "sent"
    ])
  })

  it("content types are compared without case and without parameters", () => {
    expect(mediaTypeOf("Image/PNG; charset=binary")).toBe("image/png")
    expect(mediaTypeOf("  image/webp ")).toBe("image/webp")
    const choice = chooseImages([{ ...png(), contentType: "IMAGE/JPEG; name=x.jpg" }], on)
    expect(choice.urls).toHaveLength(1)
  })

  it("a missing or empty content type is an unknown type, whatever the name says", () => {
    const choice = chooseImages([{ ...png("x.png"), contentType: null }, { ...png("y.png"), contentType: " ; a=b" }], on)
    expect(choice.urls).toEqual([])
    expect(choice.verdicts).toEqual([
      { _tag: "NotSent", reason: "unknown-type" },
      { _tag: "NotSent", reason: "unknown-type" }
    ])
  })

  it("a lying content type: the content type decides and the name is never trusted", () => {
    const pdfNamedPng = { url: cdn("cat.png"), contentType: "application/pdf", size: 100 }
    const pngNamedPdf = { url: cdn("notes.pdf"), contentType: "image/png", size: 100 }
    const choice = chooseImages([pdfNamedPng, pngNamedPdf], on)
    expect(choice.urls).toEqual([cdn("notes.pdf")])
    expect(choice.verdicts[0]).toEqual({ _tag: "NotSent", reason: "not-an-image" })
  })

  it("declared size: 0 bytes is empty, 1 byte and exactly 10 MB are sent, one byte more and 2 GB are too large", () => {
    const sizes = [0, 1, imageLimits.maxBytes, imageLimits.maxBytes + 1, 2 * 1024 ** 3, Infinity, -1, NaN]
    const choice = chooseImages(sizes.map((size, i) => png(`s${i}.png`, size)), { enabled: true })
    expect(choice.verdicts.map((v) => (v._tag === "Sent" ? "sent" : v.reason))).toEqual([
      "empty",
      "sent",
      "sent",
      "too-large",
      "too-large",
      "too-large",
      "unknown-size",
      "unknown-size"
    ])
    expect(imageLimits.maxBytes).toBe(10_485_760)
  })

  it("50 png attachments: the first 4 are sent, the other 46 are 'more than 4 images'", () => {
    const many = Array.from({ length: 50 }, (_, i) => png(`p${i}.png`))
    const choice = chooseImages(many, on)
    expect(choice.urls).toEqual([0, 1, 2, 3].map((i) => cdn(`p${i}.png`)))
    expect(choice.verdicts.slice(4).every((v) => v._tag === "NotSent" && v.reason === "too-many")).toBe(true)
    expect(choice.verdicts).toHaveLength(50)
  })

  it("an image that is not sent for its own reason does not take one of the 4 places", () => {
    const list = [png("big.png", imageLimits.maxBytes + 1), ...Array.from({ length: 4 }, (_, i) => png(`ok${i}.png`))]
    expect(chooseImages(list, on).urls).toHaveLength(4)
  })

  it("only https URLs on Discord's CDN hosts are sent", () => {
    const urls = [
      "https://media.discordapp.net/attachments/1/2/a.png",
      "http://cdn.discordapp.com/attachments/1/2/a.png",
      "https://evil.example/a.png",
      "https://cdn.discordapp.com.evil.example/a.png",
      "https://cdn.discordapp.com@evil.example/a.png",
      "https://user:pw@cdn.discordapp.com/a.png",
      "https://cdn.discordapp.com:8443/a.png",
      "https://discordapp.com/a.png",
      "file:///etc/passwd",
      "javascript:alert(1)",
      "not a url",
      ""
    ]
    const choice = chooseImages(urls.map((url) => png("x.png", 10, url)), on)
    expect(choice.urls).toEqual(["https://media.discordapp.net/attachments/1/2/a.png"])
    expect(choice.verdicts.slice(1).every((v) => v._tag === "NotSent" && v.reason === "not-discord-cdn")).toBe(true)
  })

  it("the URL sent is the parsed one (what was checked is what Letta gets)", () => {
    expect(discordCdnUrl("HTTPS://CDN.DiscordApp.com/a b.png")).toBe("https://cdn.discordapp.com/a%20b.png")
    expect(discordCdnUrl("https://cdn.discordapp.com:443/a.png")).toBe("https://cdn.discordapp.com/a.png")
  })

  it("images off: no image is sent and image types say so; other types keep their own reason", () => {
    const choice = chooseImages([png(), { url: cdn("b.pdf"), contentType: "application/pdf", size: 3 }], { enabled: false })
    expect(choice.urls).toEqual([])
    expect(choice.verdicts).toEqual([
      { _tag: "NotSent", reason: "images-off" },
      { _tag: "NotSent", reason: "not-an-image" }
    ])
  })

  it("no attachments: nothing sent; every reason has words", () => {
    expect(chooseImages([], on)).toEqual({ verdicts: [], urls: [] })
    expect(notSentWording["too-large"]).toBe("over 10 MB")
    expect(notSentWording["too-many"]).toBe("more than 4 images")
    expect(notSentWording["not-discord-cdn"]).toBe("not a Discord CDN URL")
  })
})
