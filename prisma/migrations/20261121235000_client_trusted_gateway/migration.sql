-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "trusted_gateway" BOOLEAN NOT NULL DEFAULT false;
