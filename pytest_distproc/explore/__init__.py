"""Searching fault plans and interleavings on the simulated backend, and shrinking what fails."""
