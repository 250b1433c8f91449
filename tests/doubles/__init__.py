"""Test doubles of systems holdcast talks to that cannot run on a test machine."""
