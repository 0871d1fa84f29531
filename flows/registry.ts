// Every flow this codebase ships. The worker hosts them all; add a flow by adding it here.
import { accountFlows } from './accounts/index.js'
import type { Flow } from './define.js'
import { quote } from './orders/quote.js'
import { healthcheck } from './system/healthcheck.js'

export const flows: readonly Flow[] = [healthcheck, quote, ...accountFlows] as unknown as readonly Flow[]
