"""Readers that turn real public data files into canonical tables (see ``include/canonical.py``).

- :mod:`include.sources.dataco`: the DataCo supply-chain sample (orders, order lines, customers, holds);
- :mod:`include.sources.sdn`: the OFAC Specially Designated Nationals list (sanctions entries).
"""
