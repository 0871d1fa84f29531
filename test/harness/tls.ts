// A CA and a server certificate for 127.0.0.1, made with openssl for one test.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireBinary } from './process.js'

export interface Certificates {
  ca: string
  serverCert: string
  serverKey: string
}

export function makeCertificates(dir: string): Certificates {
  const openssl = requireBinary('openssl', ['/usr/bin/openssl'], 'apt-get install openssl')
  mkdirSync(dir, { recursive: true })
  const f = (name: string) => join(dir, name)
  const run = (...args: string[]) => execFileSync(openssl, args, { stdio: 'ignore' })
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=flowgate-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem'))
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr'))
  const ext = f('ext.cnf')
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  run('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', f('server.pem'))
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key') }
}
