import { Histogram, type Registry } from 'prom-client'

export interface HttpMetrics {
  observe(method: string, route: string, status: number, seconds: number): void
}

/** Request duration in seconds by method, route template and status: every label bounded. */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  const duration = new Histogram({
    name: 'flowgate_http_request_duration_seconds',
    help: 'HTTP requests served by the gateway, by route template',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  return {
    observe(method: string, route: string, status: number, seconds: number) {
      duration.observe({ method, route, status: String(status) }, seconds)
    },
  }
}
