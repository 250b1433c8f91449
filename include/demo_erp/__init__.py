"""The demo ERP: a generated order-to-cash world with a known truth (see :mod:`include.demo_erp.generate`).

Import from ``include.demo_erp.generate``; this package file stays empty so importing the package is cheap.
"""
