-- roomcast-dev.conf.lua - a development setup: loopback only, one worker,
-- chatty logs, the admin endpoint without a token. Start it with
--   ./build/roomcast -c etc/roomcast-dev.conf.lua
-- Options not set here keep their defaults (see etc/roomcast.conf.lua).

bind = "127.0.0.1"
port = 8080
workers = 1
script = "scripts/chat.lua"
admin = "127.0.0.1:8081"
log_level = "debug"
handshake_timeout = 5
drain_time = 0.5
-- wss:// with a throwaway certificate:
--   openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
--       -keyout /tmp/rc-key.pem -out /tmp/rc-cert.pem
-- tls_cert = "/tmp/rc-cert.pem"
-- tls_key = "/tmp/rc-key.pem"
-- tls_port = 8443
