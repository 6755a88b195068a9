"""Telling subscribers of care-pathway events: who is told of each event on
the outbox, as consent decides (``fanout``), the notification Bundles
(``bundles``), sending them on the rest-hook channel (``sending``) and the
worker that does both in each gateway process (``worker``)."""
