// Who may do what on the bus. Every process connects as one role and holds only the permissions
// that role needs, enforced by nats-server itself (DESIGN.md, "The bus is untrusted"): only flow
// workers may subscribe to flow requests, only gateways publish them and gateway events, and each
// role reads replies on an inbox prefix of its own, so no other role can read what it is answered.
// The server configuration `flowgate start` runs and the one shipped in deploy/nats/ are rendered
// from this one list (cli/nats-config.ts).
import { buckets, consumers, FLOW_QUEUE_GROUP, streams, subjects } from './subjects.js'

export const BUS_ROLES = ['gateway', 'flows', 'subscriber', 'cli', 'registrar', 'operator'] as const
export type BusRole = (typeof BUS_ROLES)[number]

export interface BusPermissions {
  publish: readonly string[]
  subscribe: readonly string[]
  /** May answer requests it received (a reply subject it could not otherwise publish to), once each. */
  allowResponses: boolean
  /** What the role is for, in the rendered configuration. */
  purpose: string
}

/**
 * Each role's inbox prefix: replies to a role's requests land under it, and only that role may
 * subscribe there. The operator keeps NATS's default, so the `nats` CLI works without options.
 */
export function inboxPrefix(role: BusRole): string {
  return role === 'operator' ? '_INBOX' : `_INBOX_${role}`
}

const api = '$JS.API'
const kv = (bucket: string) => `KV_${bucket}`

/** JetStream API calls on one stream: reading its state and messages. */
const readStream = (stream: string) => [`${api}.STREAM.INFO.${stream}`, `${api}.STREAM.MSG.GET.${stream}`, `${api}.DIRECT.GET.${stream}`, `${api}.DIRECT.GET.${stream}.>`]
/** Creating a stream, or bringing its limits in line. */
const manageStream = (stream: string) => [`${api}.STREAM.CREATE.${stream}`, `${api}.STREAM.UPDATE.${stream}`]
/** Ephemeral and ordered consumers (a watch, a tail, a replay): created, pulled or fed, deleted. */
const ephemeralConsumers = (stream: string) => [
  `${api}.CONSUMER.CREATE.${stream}`,
  `${api}.CONSUMER.CREATE.${stream}.>`,
  `${api}.CONSUMER.INFO.${stream}.>`,
  `${api}.CONSUMER.DELETE.${stream}.>`,
  `${api}.CONSUMER.MSG.NEXT.${stream}.>`,
  `$JS.FC.${stream}.>`,
]
/** A KV bucket, read and watched. */
const readBucket = (bucket: string) => [...readStream(kv(bucket)), ...ephemeralConsumers(kv(bucket))]
/** A KV bucket, written (put, delete) and created when absent. */
const writeBucket = (bucket: string) => [`$KV.${bucket}.>`, ...manageStream(kv(bucket)), ...readStream(kv(bucket))]

const PERMISSIONS: Record<BusRole, BusPermissions> = {
  gateway: {
    purpose: 'HTTP gateway: sends flow requests and gateway events, watches the blocklist, discovers flows',
    publish: [
      `${subjects.flowPrefix}.>`,
      subjects.cancel,
      subjects.gatewayAll,
      '$SRV.INFO',
      '$SRV.INFO.>',
      `${api}.INFO`,
      ...manageStream(streams.gateway),
      ...readStream(streams.gateway),
      ...readStream(streams.traces),
      ...readBucket(buckets.blocklist),
      ...writeBucket(buckets.blocklist),
      // Proxy upstreams that register themselves: watched, and the bucket created when absent.
      ...readBucket(buckets.services),
      ...manageStream(kv(buckets.services)),
    ],
    subscribe: [`${inboxPrefix('gateway')}.>`, subjects.discoveryAnnounce],
    allowResponses: false,
  },
  flows: {
    purpose: 'flow worker: serves flow requests in the queue group, publishes step events',
    publish: [subjects.traceAll, subjects.discoveryAnnounce, `${api}.INFO`, ...manageStream(streams.traces), `${api}.STREAM.INFO.${streams.traces}`],
    subscribe: [`${subjects.flowPrefix}.> ${FLOW_QUEUE_GROUP}`, '$SRV.>', subjects.cancel, `${inboxPrefix('flows')}.>`],
    allowResponses: true,
  },
  subscriber: {
    purpose: 'subscriber: consumes gateway events, writes blocks, publishes alerts',
    publish: [
      subjects.alertAll,
      subjects.gatewayEvent('ip.blocked'),
      `${api}.INFO`,
      ...manageStream(streams.gateway),
      ...readStream(streams.gateway),
      `${api}.CONSUMER.DURABLE.CREATE.${streams.gateway}.${consumers.subscriber}`,
      `${api}.CONSUMER.CREATE.${streams.gateway}.${consumers.subscriber}`,
      `${api}.CONSUMER.CREATE.${streams.gateway}.${consumers.subscriber}.>`,
      `${api}.CONSUMER.UPDATE.${streams.gateway}.${consumers.subscriber}`,
      ...ephemeralConsumers(streams.gateway),
      `$JS.ACK.${streams.gateway}.>`,
      ...writeBucket(buckets.blocklist),
    ],
    subscribe: [`${inboxPrefix('subscriber')}.>`],
    allowResponses: false,
  },
  cli: {
    purpose: 'flowgate CLI commands: blocks, events tail, traces',
    publish: [
      `${api}.INFO`,
      ...manageStream(streams.gateway),
      ...readStream(streams.gateway),
      ...ephemeralConsumers(streams.gateway),
      ...readStream(streams.traces),
      ...readBucket(buckets.blocklist),
      ...writeBucket(buckets.blocklist),
    ],
    subscribe: [`${inboxPrefix('cli')}.>`],
    allowResponses: false,
  },
  registrar: {
    purpose: 'an HTTP service registering itself as a proxy upstream (flowgate upstream register): the services bucket only',
    publish: [`${api}.INFO`, ...writeBucket(buckets.services), ...readBucket(buckets.services)],
    subscribe: [`${inboxPrefix('registrar')}.>`],
    allowResponses: false,
  },
  operator: {
    purpose: 'read-only, for people with the nats CLI: events, alerts, step traces, streams, micro services; never flow requests',
    publish: [
      '$SRV.PING',
      '$SRV.PING.>',
      '$SRV.INFO',
      '$SRV.INFO.>',
      '$SRV.STATS',
      '$SRV.STATS.>',
      `${api}.INFO`,
      `${api}.STREAM.NAMES`,
      `${api}.STREAM.LIST`,
      `${api}.CONSUMER.NAMES.>`,
      `${api}.CONSUMER.LIST.>`,
      ...[streams.gateway, streams.traces, kv(buckets.blocklist), kv(buckets.services)].flatMap((s) => [...readStream(s), ...ephemeralConsumers(s)]),
    ],
    subscribe: [subjects.gatewayAll, subjects.alertAll, subjects.traceAll, `${inboxPrefix('operator')}.>`],
    allowResponses: false,
  },
}

export function permissionsOf(role: BusRole): BusPermissions {
  const p = PERMISSIONS[role]
  return { ...p, publish: [...new Set(p.publish)], subscribe: [...new Set(p.subscribe)] }
}
