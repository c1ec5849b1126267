-- AlterTable
ALTER TABLE "users" ADD COLUMN     "session_generation" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "allowed_resources" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "session_epoch" UUID NOT NULL DEFAULT gen_random_uuid();
