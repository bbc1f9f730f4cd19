/**
 * Waits for `work` at most `ms`: true when it settled (resolved or rejected) in time, false when the
 * deadline passed first. The work is not cancelled; a shutdown or start step that hangs on a dead link
 * must not hang the process with it.
 */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
    timer.unref()
  })
  try {
    return await Promise.race([work.then(() => true, () => true), deadline])
  } finally {
    clearTimeout(timer)
  }
}
