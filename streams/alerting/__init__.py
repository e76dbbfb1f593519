"""On-call side of SLA alerts: silences, listing, and webhook delivery of ``sla-alerts``.

The lifecycle that decides *which* records exist is pure (``tables.alerts``); this package
only reads what the stream wrote and gets it to people:

* ``silences``   - silences kept in the compacted ``<prefix>alert-silences`` topic
* ``listing``    - the latest record per fingerprint, for ``fstreams alerts list``
* ``receivers``  - Alertmanager-webhook and PagerDuty-Events-v2 endpoints
* ``breaker``    - one circuit breaker per receiver
* ``delivery``   - the delivery consumer (``fstreams alerts deliver``, ``run_delivery``)
* ``config``     - its settings (``FSTREAMS_ALERTING_*``)
"""
