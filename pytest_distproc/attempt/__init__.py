"""What runs inside an attempt's process: the skill, its faults, its data, its summary.

The child side of the fork: it imports neither pytest, Hypothesis nor PyYAML, and talks to the
coordinator only through the plain data of :mod:`.messages`.
"""
