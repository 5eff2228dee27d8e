"""Neutral runtime library for product code (edge, cloud, firmware_sim): the MQTT client factory."""
