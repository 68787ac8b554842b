#!/usr/bin/env node
// The CLI is TypeScript; tsx lets the checkout run it without a build step (`npx clawnet …`).
import { register } from 'tsx/esm/api'

register()
await import('../relay/cli.ts')
