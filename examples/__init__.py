"""Example upstream applications used to demonstrate and test Bastion."""
