"""Simulated waste-bin scales: physics with ground truth, ASCII indicator and Modbus transmitter."""
