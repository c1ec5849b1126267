#!/usr/bin/env node
// The `identity` command (package.json "bin"): checks the runtime, loads .env
// when present (variables already in the environment win), starts tracing if
// configured, then runs the CLI.
// Executable in git, so npm linking it never changes a tracked file's mode.
import '../scripts/require-node.js';
import { existsSync } from 'node:fs';

if (existsSync('.env')) process.loadEnvFile('.env');
// Before the app loads: tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) hooks ioredis and pg.
await import('../src/observability/tracing.ts');
await import('../src/cli.ts');
