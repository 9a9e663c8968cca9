"""The API security scanner behind `bastion scan`: discovery, checks, reports.

Entry point: `bastion.scanner.runner.run_scan(ScanOptions(...))`. This package imports nothing
eagerly, so that `bastion` commands other than `scan` do not load the HTTP client.
"""
