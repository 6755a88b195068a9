"""Notifications along the care pathway, as far as a write knows them: the
events subscribers may be told of (``topics``), the outbox they are recorded
in, in the unit of work of the change that caused them (``outbox``), what a
Subscription asks for (``subscriptions``) and where its delivery stands
(``state``). Telling subscribers is ``gateway.delivery``'s."""
