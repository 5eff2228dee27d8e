"""Neutral runtime library for product code (edge, cloud, firmware_sim, broker): the MQTT client factory, host helpers, back-off."""
