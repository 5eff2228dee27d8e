"""Helpers the tests share (no tests here): one module per concern."""
