-- Prosody for bench/peers.py (the bench fills in @DIR@ and @PORT@; /etc is not read).
-- Loopback only, no TLS, no rate limits, offline storage on. Accounts are registered
-- in-band (XEP-0077) by the bench before it measures anything.
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { warn = "@DIR@/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
allow_registration = true
-- No registration throttling for the bench's own address.
registration_whitelist = { "127.0.0.1" }
min_seconds_between_registrations = 0
modules_enabled = {
  "disco";
  "offline";
  "ping";
  "register";
  "roster";
  "saslauth";
}
modules_disabled = { "s2s" }
VirtualHost "localhost"
