// Prisma 7 CLI config: used only by `prisma generate` (no database needed).
// Migrations are applied by `identity migrate` (src/store/migrate.ts) and
// written with Prisma 6.19 on demand (prisma/migrate.config.ts); see README
// "Database and migrations".
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
