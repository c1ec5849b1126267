-- RFC 9449 §5.2 client metadata `dpop_bound_access_tokens`: a client marked
-- so gets tokens only with a DPoP proof (a request without one is refused).
ALTER TABLE "clients" ADD COLUMN "dpop_bound_access_tokens" BOOLEAN NOT NULL DEFAULT false;
