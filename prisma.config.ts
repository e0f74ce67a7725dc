import { defineConfig } from 'prisma/config';

// Only `prisma generate` is used; Veil applies prisma/migrations itself (src/store/migrator.ts).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
