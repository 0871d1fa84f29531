// Every flow this codebase ships. The worker hosts them all; add a flow by adding it here.
import type { Flow } from './define.js'
import { quote } from './orders/quote.js'
import { healthcheck } from './system/healthcheck.js'

export const flows: readonly Flow[] = [healthcheck, quote] as unknown as readonly Flow[]
