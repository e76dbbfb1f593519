"""On-call side of SLA alerts: silences, listing, and webhook delivery of ``sla-alerts``.

The lifecycle that decides *which* records exist is pure (``tables.alerts``); this package
only reads what the stream wrote and gets it to people:

* ``silences``       silences in the compacted ``<prefix>alert-silences`` topic
* ``silence_cache``  the silences a deliverer checks, re-read periodically
* ``listing``        the latest record per fingerprint, for ``fstreams alerts list``
* ``receivers``      Alertmanager-webhook and PagerDuty-Events-v2 endpoints
* ``receiver_pump``  one receiver's consumer group: retries, backoff, breaker, commits
* ``delivery``       ``run_delivery`` (``fstreams alerts deliver``)
* ``breaker``, ``backoff``, ``stats``, ``config`` (``FSTREAMS_ALERTING_*``)
"""
