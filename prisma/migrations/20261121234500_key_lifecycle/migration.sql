-- AlterEnum
ALTER TYPE "KeyStatus" ADD VALUE 'revoked';

-- AlterTable
ALTER TABLE "signing_keys" ADD COLUMN     "deactivated_at" TIMESTAMPTZ(3),
ADD COLUMN     "retired_at" TIMESTAMPTZ(3);
