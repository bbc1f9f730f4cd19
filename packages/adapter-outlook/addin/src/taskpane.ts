/** Entry of the task pane bundle: waits for Office.js, then starts the pane against this page's server. */
import type { OfficeLike } from './office-item.js'
import { Pane } from './pane.js'
import type { PaneSocketConstructor } from './pane-client.js'

declare const Office: OfficeLike & { onReady(callback?: () => void): Promise<unknown> }

function clientId(): string {
  const key = 'concordAddinClientId'
  let id = window.localStorage.getItem(key)
  if (!id || !/^[A-Za-z0-9._:-]{1,64}$/.test(id)) {
    id = `addin-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`
    window.localStorage.setItem(key, id)
  }
  return id
}

void Office.onReady(() => {
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/client`
  const pane = new Pane(document, Office, { url, WebSocket: WebSocket as unknown as PaneSocketConstructor, clientId: clientId() })
  void pane.start()
})
