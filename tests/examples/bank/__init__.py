"""Tests for the banking reference upstream."""
