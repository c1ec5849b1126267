// Prisma 6.19 CLI config for `migrate deploy` / `migrate diff`: its WebAssembly
// schema engine ("js") needs no native download, which keeps migrations
// working offline, in CI, in the Docker image and in the Kubernetes Job alike.
import { PrismaPg } from '@prisma/adapter-pg';

const url = process.env.DATABASE_URL;

export default {
  experimental: { adapter: true },
  engine: 'js',
  schema: 'schema.prisma',
  migrations: { path: 'migrations' },
  async adapter() {
    if (!url) throw new Error('DATABASE_URL is not set');
    return new PrismaPg({ connectionString: url });
  },
};
