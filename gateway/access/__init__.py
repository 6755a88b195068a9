"""The access layer: gathers, from the store, the facts ``consent`` decides on
(the resource's labels, codes, clinical date and author; the person's
relationships and Consents) and applies the decision to every read path."""
