// Prisma 7 CLI config: used only by `prisma generate` (no database needed).
// Migrations run through prisma/migrate.config.ts; see README "Database".
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
