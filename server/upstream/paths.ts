// The path sent to a target: the request's path as it came (percent-encoding untouched), less the
// route's prefix when it strips one, under the target's base path, with the query as it came.
// A path that could climb out of the route's prefix on the upstream is refused, not normalised:
// dot segments (also percent-encoded, also Tomcat's `..;`), encoded slashes and backslashes, NUL,
// and empty segments.

const ENCODED_DOT = /%2e/gi
const FORBIDDEN = /%2f|%5c|%00|\\/i

/** Why a raw request path may not be forwarded, or undefined when it may. */
export function unsafePath(rawPath: string): string | undefined {
  if (FORBIDDEN.test(rawPath)) return 'encoded slashes, backslashes and NUL are not forwarded'
  const segments = rawPath.split('/')
  // segments[0] is '' (the path starts with /); a last '' is a trailing slash.
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!
    if (s === '') {
      if (i < segments.length - 1) return 'empty path segments (//) are not forwarded'
      continue
    }
    if (s.length <= 12 && (s.includes('.') || s.includes('%'))) {
      const bare = s.replace(ENCODED_DOT, '.').split(';')[0]
      if (bare === '.' || bare === '..') return 'dot segments are not forwarded'
    }
  }
  return undefined
}

/**
 * The upstream request path: base + (URL less the stripped prefix), the query as it came. Undefined
 * when the raw URL does not start with the prefix (the router matched a percent-encoded spelling of it).
 */
export function upstreamPath(url: string, stripPrefix: string, basePath: string): string | undefined {
  let rest = url
  if (stripPrefix !== '') {
    if (!url.startsWith(stripPrefix)) return undefined
    rest = url.slice(stripPrefix.length)
    if (rest === '' || rest[0] === '?') rest = `/${rest}`
    else if (rest[0] !== '/') return undefined
  }
  return basePath + rest
}
