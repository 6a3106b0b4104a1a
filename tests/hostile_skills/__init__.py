"""Hostile skills: each tries to break a promise of the fork backend (containment, isolation, bounded output).

Used by tests/test_hostile.py through ``skill: tests.hostile_skills.<module>:<function>``; every one
returns an honest region-stats summary when it could not do harm, so a passing item means it was contained.
"""
