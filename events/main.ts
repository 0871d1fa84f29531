// The subscriber process: connect, consume, close in reverse order.
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { consumers, streams } from '../lib/subjects.js'
import { createSubscriber } from './subscriber.js'

export async function start(config: Config, log: Logger): Promise<Running> {
  const closers: Closer[] = []
  const nc = await connectNats(config, log, 'subscriber')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const subscriber = createSubscriber(nc, config, { log })
  closers.push({ name: 'subscriber', close: () => subscriber.close() })
  return {
    describe: `subscriber: durable consumer ${consumers.subscriber} on ${streams.gateway}`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
