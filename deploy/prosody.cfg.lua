-- Prosody for the hub (compose.yaml). Replace example.org with your domain.
admins = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "offline"; "carbons"; "smacks"; "mam" }
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
log = { info = "*console" }
-- Only the hub container reaches the component port.
component_ports = { 5347 }
component_interfaces = { "*" }

VirtualHost "example.org"

Component "devices.example.org"
    component_secret = io.open("/etc/prosody/component.secret"):read("*l")
