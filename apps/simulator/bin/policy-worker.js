// Child process of `simulate(…, { jobs })`: registers tsx, then runs one policy (src/policy-worker.ts).
import { register } from 'tsx/esm/api'

register()
await import('../src/policy-worker.ts')
