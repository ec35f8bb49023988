"""OpenAI-compatible chat-completions and embeddings simulator for the demo, tests and benchmarks; reached
over HTTP."""

from .server import RunningSimulator, start_simulator
from .settings import SettingsError, SimulatorSettings

__all__ = ["RunningSimulator", "SettingsError", "SimulatorSettings", "start_simulator"]
