"""Tests for the example upstream applications."""
