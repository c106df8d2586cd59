/**
 * A URL as logs and replies show it. `LETTA_BASE_URL` may carry credentials (`https://user:pass@host`)
 * or a token in its query (`?token=...`): those are secrets, so the user name, the password and
 * every query value print as `redacted`, the fragment is dropped, and the rest (scheme, host,
 * port, path, query keys) is kept, since that is what an operator needs to recognise the server.
 * A URL with none of these is returned as written (no normalisation), and text that does not
 * parse as a URL is not printed at all.
 */
export const shownUrl = (text: string): string => {
  if (!URL.canParse(text)) return "<not a URL>"
  const url = new URL(text)
  if (url.username === "" && url.password === "" && url.search === "" && url.hash === "") return text
  if (url.username !== "" || url.password !== "") {
    url.username = "redacted"
    url.password = ""
  }
  const keys = [...new Set(url.searchParams.keys())]
  url.search = ""
  for (const key of keys) url.searchParams.append(key, "redacted")
  url.hash = ""
  return url.toString()
}
