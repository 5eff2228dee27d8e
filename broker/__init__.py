"""Production broker security from the site registry: identities and ACLs, TLS, mosquitto.conf (`gumei broker gen`)."""
