"""SAP S/4HANA connector: read sales orders over OData v2 and write decisions back, exactly once.

- :mod:`include.sap.client`: one HTTP session to the service: settings from the Airflow connection,
  timeouts, the CSRF token, retries with backoff, SAP error bodies turned into exceptions;
- :mod:`include.sap.hook`: :class:`~include.sap.hook.SapODataHook`, the incremental reader;
- :mod:`include.sap.labels`: SAP credit and block fields read as hold labels;
- :mod:`include.sap.writeback`: the write-back of decisions, with its audit table.
"""
