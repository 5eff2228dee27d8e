"""Daily tonnage and targets: pure NumPy functions and the runner that feeds them from InfluxDB."""
