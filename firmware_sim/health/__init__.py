"""Simulated smart-health-hut devices speaking GATT notification bytes over the socket transport."""

from firmware_sim.health.hut import HealthHutSim, Sent, Visit
from firmware_sim.health.instruments import INSTRUMENTS, Instrument
from firmware_sim.health.peripheral import PeripheralServer
from firmware_sim.health.residents import Resident, Truth, make_residents, measure

__all__ = [
    "INSTRUMENTS",
    "HealthHutSim",
    "Instrument",
    "PeripheralServer",
    "Resident",
    "Sent",
    "Truth",
    "Visit",
    "make_residents",
    "measure",
]
