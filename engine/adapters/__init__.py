"""Thin adapters that turn a Decision into enforcement: CLI, HTTP hooks, admission."""
