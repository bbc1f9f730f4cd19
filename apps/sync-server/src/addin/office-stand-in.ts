/**
 * Test helper: the script served in place of Microsoft's Office.js in headless Chromium. It describes
 * one open message (the members `Office.context.mailbox.item` has in read mode) and keeps roaming
 * settings in page memory.
 */
export interface StandInMessage {
  itemId: string
  internetMessageId: string
  subject: string
  from: { emailAddress: string; displayName?: string }
  to: Array<{ emailAddress: string; displayName?: string }>
  cc: Array<{ emailAddress: string; displayName?: string }>
  dateTimeCreated: string
}

export const OFFICE_JS_URL = 'https://appsforoffice.microsoft.com/lib/1/hosted/office.js'

export function officeStandInScript(item: StandInMessage, userEmail: string): string {
  return `(() => {
  const item = Object.assign(${JSON.stringify(item)}, { itemType: 'message' });
  item.dateTimeCreated = new Date(item.dateTimeCreated);
  const saved = {};
  const info = { host: 'Outlook', platform: 'OfficeOnline' };
  window.Office = {
    AsyncResultStatus: { Succeeded: 'succeeded', Failed: 'failed' },
    context: {
      mailbox: { item, userProfile: { emailAddress: ${JSON.stringify(userEmail)} } },
      roamingSettings: {
        get: (name) => saved[name],
        set: (name, value) => { saved[name] = value },
        remove: (name) => { delete saved[name] },
        saveAsync: (callback) => { if (callback) setTimeout(() => callback({ status: 'succeeded', error: null })) },
      },
    },
    onReady: (callback) => new Promise((resolve) => setTimeout(() => { if (callback) callback(info); resolve(info) })),
  };
})();`
}
