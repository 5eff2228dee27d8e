"""The local dev/test/demo stack: private influxd and Mosquitto on free ports, process helpers, LocalStack."""
