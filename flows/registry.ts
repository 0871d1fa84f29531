// Every flow this codebase ships. The worker hosts them all; add a flow by adding it here.
import { accountFlows } from './accounts/index.js'
import type { Flow } from './define.js'
import { quote } from './orders/quote.js'
import { healthcheck } from './system/healthcheck.js'

/** Flows that need no database: any worker can host them. */
export const databaseFreeFlows: readonly Flow[] = [healthcheck, quote] as unknown as readonly Flow[]
/** Flows that read or write the database (ctx.deps.db). */
export const databaseFlows: readonly Flow[] = accountFlows as unknown as readonly Flow[]
export const flows: readonly Flow[] = [...databaseFreeFlows, ...databaseFlows]
