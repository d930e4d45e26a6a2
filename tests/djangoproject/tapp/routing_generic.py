"""Placeholder: filled by the tests of this area."""

channel_routing = []
