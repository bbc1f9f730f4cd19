/** A fetch that counts requests and throttled responses of one side (token requests are not counted). */
export interface RequestCounter {
  requests: number
  throttled: number
}

export function countingFetch(inner: typeof fetch, counter: RequestCounter, isTokenRequest: (url: string) => boolean, onRequest?: (throttled: boolean) => void): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const counted = !isTokenRequest(url)
    if (counted) counter.requests++
    const res = await inner(input, init)
    const throttled = res.status === 429 || res.status === 503
    if (counted && throttled) counter.throttled++
    if (counted) onRequest?.(throttled)
    return res
  }) as typeof fetch
}
