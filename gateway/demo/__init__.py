"""The synthetic London the demo runs on: a seeded generator of source files
(hospital ADT, GP Connect records, council CLD returns, care-home exports)
for three boroughs' organisations, and ``gateway demo``, which loads them
through the real mappings, registers a client per organisation and prints a
working command for each user's story."""
