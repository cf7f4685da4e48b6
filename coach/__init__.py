"""coach: an offline, eyes-free voice coach for guided exercise."""

__version__ = "0.1.0"
