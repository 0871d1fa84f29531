// V8 settings for a process that serves requests; imported first by every entry point.
//
// Allocation-site pretenuring lets V8 decide, from how many objects of one allocation site survive
// a young-generation GC, to allocate that site's objects straight in the old generation. Under
// steady load the decision went either way per process and stuck for its life: in more than half
// of the worker processes measured (and some gateways), per-request objects (NATS message headers,
// HTTP response headers) were promoted, the old generation needed ~5 mark-compacts per 5 s instead
// of none, and CPU per request rose by a third (worker 29-31 µs against 21-24). With pretenuring
// off, 11 of 11 runs under steady load stayed in the fast mode. A request's objects live for
// milliseconds; the young generation is where they belong.
import { setFlagsFromString } from 'node:v8'

setFlagsFromString('--no-allocation-site-pretenuring')
