"""Notifications along the care pathway: the events subscribers may be told
of (``topics``) and the outbox they are recorded in, in the unit of work of
the change that caused them (``outbox``)."""
