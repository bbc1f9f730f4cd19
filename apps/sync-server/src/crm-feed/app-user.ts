/** The application user's own systemuserid (WhoAmI without impersonation): the identity of the organization feed. */
import { whoAmI } from '@concord/adapter-crm'
import { SyncError } from '@concord/engine'
import { ServerError } from '../errors.js'

export async function applicationUserId(crm: { url: string; tokenUrl: string; clientId: string; clientSecret: string }, fetchImpl: typeof fetch = fetch): Promise<string> {
  try {
    const who = await whoAmI({ orgUrl: crm.url, tokenUrl: crm.tokenUrl, clientId: crm.clientId, clientSecret: crm.clientSecret }, { fetch: fetchImpl })
    return who.userId
  } catch (error) {
    if (error instanceof SyncError) {
      if (error.code === 'Unauthorized' || error.code === 'Forbidden') throw new ServerError('Auth', `the CRM refused the application's credentials: ${error.message}`, { cause: error })
      if (error.code === 'Config') throw new ServerError('Config', `invalid CRM settings: ${error.message}`, { cause: error })
      if (error.code === 'InvalidRemoteData') throw new ServerError('Internal', `WhoAmI answered without a UserId: ${error.message}`, { cause: error })
    }
    throw new ServerError('Auth', `WhoAmI failed: ${(error as Error).message}`, { cause: error })
  }
}
