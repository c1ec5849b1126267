#!/bin/sh
# Key sync for the HAProxy kit: export the identity service's published keys
# (the pre-published successor included) and reload HAProxy when they changed.
# Run it more often than the pre-publication window (JWKS_MAX_AGE +
# KEY_SYNC_INTERVAL, 605 s by default), e.g. every minute from a systemd timer
# or cron, so a new key is loaded before it signs anything:
#   KEYS_DIR=/etc/haproxy/identity-keys JWKS_URL=https://id.example.com/jwks \
#   HAPROXY_CFG=/etc/haproxy/haproxy.cfg sync-keys.sh
# HAPROXY_RELOAD (default "systemctl reload haproxy") runs only after the new
# configuration passed `haproxy -c`, so a bad export never replaces good keys
# in the running process. IDENTITY_CLI (default "identity") is the identity
# CLI; not IDENTITY, which haproxy.cfg reads as the service's address (and
# `haproxy -c` below checks that file with this environment).
set -eu
: "${KEYS_DIR:?}" "${JWKS_URL:?}" "${HAPROXY_CFG:?}"
out=$(${IDENTITY_CLI:-identity} keys export --pem "$KEYS_DIR" --jwks-url "$JWKS_URL")
case "$out" in
*'"changed": true'*)
  haproxy -dW -c -q -f "$HAPROXY_CFG" -f "$KEYS_DIR/keys.cfg"
  ${HAPROXY_RELOAD:-systemctl reload haproxy}
  echo "identity keys changed: HAProxy reloaded"
  ;;
esac
